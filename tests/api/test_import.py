"""POST /api/v1/import: CSV and vCard files from real address books, imported safely twice."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Rep

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "imports"


def upload(rep: Rep, name: str, data: bytes | None = None) -> Any:
    """Send a fixture file (or ``data`` under that name) as the phone's file picker does."""
    body = data if data is not None else (FIXTURES / name).read_bytes()
    return rep.post(
        "/import", data={"file": (io.BytesIO(body), name)}, content_type="multipart/form-data"
    )


def by_name(rep: Rep) -> dict[str, dict[str, Any]]:
    items = rep.get("/clients", query_string={"limit": 500}).json["items"]
    return {c["name"]: c for c in items}


def test_google_contacts_csv(rep):
    resp = upload(rep, "google_contacts.csv")
    assert resp.status_code == 200, resp.json
    assert resp.json["created"] == 4 and resp.json["updated"] == resp.json["skipped"] == 0
    clients = by_name(rep)
    maria = clients["Maria Okafor"]
    # The Mobile number wins over the Work one; Google's system labels are not tags.
    assert maria["phone"] == "+13125550199"
    assert maria["email"] == "maria@lakesidedental.example"
    assert maria["company"] == "Lakeside Dental"
    assert maria["notes"] == "Orders gloves quarterly.\r\nPrefers mornings."
    assert maria["tags"] == ["Clients"]
    # Two numbers in one cell: the first one.
    assert clients["Tomás Ruiz"]["phone"] == "+17735550102"
    # A business with no person's name is named after the company.
    assert clients["Northside Hardware"]["tags"] == ["Clients", "VIP"]
    # A number that cannot be read is kept as typed, with a warning naming the line.
    assert clients["Li Wei"]["phone"] == "call the shop"
    assert resp.json["errors"] == [
        {"line": 6, "message": 'The phone number "call the shop" could not be read; kept as typed.'}
    ]


def test_outlook_csv_with_bom(rep):
    resp = upload(rep, "outlook_contacts.csv")
    assert resp.status_code == 200, resp.json
    assert (resp.json["created"], resp.json["errors"]) == (3, [])
    clients = by_name(rep)
    priya = clients["Priya Natarajan"]
    assert priya["phone"] == "+13125550188"  # Mobile Phone before Business Phone
    assert priya["tags"] == ["Clients", "Tier A"]
    assert clients["Jürgen Müller"]["phone"] == "+49301234567"
    assert clients["Jürgen Müller"]["company"] == "Müller Präzision GmbH"
    assert clients["Sam O'Neil"]["notes"] == "Met at the trade show, booth 14"


def test_plain_semicolon_windows_1252_with_tier_and_cadence(rep):
    resp = upload(rep, "plain_semicolon_cp1252.csv")
    assert resp.status_code == 200, resp.json
    assert resp.json["created"] == 3
    clients = by_name(rep)
    zoe = clients["Zoë Lefèvre"]
    assert zoe["company"] == "Café Crème"
    assert zoe["notes"] == "Aime le thé \u2013 pas le café"
    # The tier column becomes the tier tag, which sets the cadence as everywhere in the app.
    assert zoe["tags"] == ["boulangerie", "B"] and zoe["cadence_days"] is None
    assert clients["François Niño"]["cadence_days"] == 14
    assert clients["François Niño"]["tags"] == ["A"]
    # (Zoë's "06 12 34 56 78" needs the default region FR: test_default_region_from_settings.)
    assert clients["François Niño"]["phone"] == "+33142685300"
    messages = {(e["line"], e["message"].split(" ")[0]) for e in resp.json["errors"]}
    assert (4, "No") in messages  # the row without a name
    assert (5, "Unknown") in messages  # tier Z
    assert (5, "The") in messages  # cadence "weekly"
    assert "Ana Côté" in clients  # imported anyway, without the bad values


def test_default_region_from_settings(app, rep):
    app.config["DEFAULT_REGION"] = "FR"
    resp = upload(rep, "plain_semicolon_cp1252.csv")
    assert by_name(rep)["Zoë Lefèvre"]["phone"] == "+33612345678"
    assert all("phone" not in e["message"] for e in resp.json["errors"])


def test_plain_csv_with_bom_quotes_and_bad_email(rep):
    resp = upload(rep, "plain_bom.csv")
    assert resp.status_code == 200, resp.json
    clients = by_name(rep)
    ada = clients["Ada Byrne"]
    assert ada["company"] == "Byrne, Byrne & Co"
    assert ada["notes"] == 'Likes "straight talk"'
    assert ada["tags"] == ["A", "wholesale"]
    assert clients["Ben Osei"]["cadence_days"] == 45
    assert clients["Chen Ho"]["email"] is None
    assert resp.json["errors"] == [
        {"line": 4, "message": '"not-an-email" is not an email address; it was left out.'}
    ]


def test_ios_vcard_3_with_photo_and_folded_lines(rep):
    resp = upload(rep, "ios_contacts.vcf")
    assert resp.status_code == 200, resp.json
    assert (resp.json["created"], resp.json["errors"]) == (2, [])
    clients = by_name(rep)
    eleanor = clients["Eleanor Harrington"]
    assert eleanor["phone"] == "+13125550161"  # the CELL one
    assert eleanor["email"] == "eleanor@harrington.example"
    assert eleanor["company"] == "Harrington Garden Supply"
    assert eleanor["notes"] == (
        "Spring catalogue goes out in February. Ask about the greenhouse expansion and the new "
        "loading bay."
    )
    assert clients["Dmitri Petrov"]["tags"] == ["Clients", "B"]


def test_android_vcard_2_1_quoted_printable(rep):
    resp = upload(rep, "android_contacts.vcf")
    assert resp.status_code == 200, resp.json
    assert (resp.json["created"], resp.json["errors"]) == (2, [])
    clients = by_name(rep)
    lucia = clients["Lucía Álvarez"]
    assert lucia["phone"] == "+34612345678"
    assert lucia["notes"] == "Prefiere WhatsApp. Pedido mínimo 20 cajas, entrega los martes."
    assert lucia["email"] == "lucia@alvarez.example"
    assert clients["Piotr Kowalski"]["phone"] == "+13125550145"


def test_vcard_4(rep):
    resp = upload(rep, "contacts_v4.vcf")
    assert resp.status_code == 200, resp.json
    grace = by_name(rep)["Grace Mbeki"]
    assert grace["phone"] == "+13125550190"
    assert grace["notes"] == "Chairs for the new branch, 40 units. Call after lunch."
    assert grace["tags"] == ["A"]


def test_google_vcard_3(rep):
    resp = upload(rep, "google_contacts.vcf")
    assert resp.status_code == 200, resp.json
    assert (resp.json["created"], resp.json["errors"]) == (2, [])
    clients = by_name(rep)
    hannah = clients["Hannah Schmidt"]
    assert hannah["phone"] == "+4915123456789"  # the CELL one, listed second
    assert hannah["email"] == "hannah@schmidt-bau.example"
    assert hannah["company"] == "Schmidt Bau GmbH"
    assert hannah["notes"] == "Prefers email, then a call.\nBudget talks in Q3."
    assert hannah["tags"] == ["Clients"]  # Google's own groups are not the rep's tags
    kwame = clients["Kwame Asante"]  # a photo given as a link is ignored like any photo
    assert (kwame["phone"], kwame["tags"]) == ("+13125550177", [])


@pytest.mark.parametrize(
    "name",
    [
        "google_contacts.csv",
        "google_contacts.vcf",
        "outlook_contacts.csv",
        "plain_semicolon_cp1252.csv",
        "plain_bom.csv",
        "ios_contacts.vcf",
        "android_contacts.vcf",
        "contacts_v4.vcf",
    ],
)
def test_reimport_creates_nothing(rep, name):
    first = upload(rep, name).json
    before = by_name(rep)
    again = upload(rep, name)
    assert again.status_code == 200
    assert again.json["created"] == again.json["updated"] == 0
    assert again.json["skipped"] == first["created"]
    assert by_name(rep) == before


def test_matching_updates_changed_fields(rep):
    by_phone = rep.add_client("Ada B.", phone="312 555 0101", notes="old")
    by_email = rep.add_client("Benjamin Osei", email="BEN@osei.example")
    by_exact_name = rep.add_client("chen  ho", tags=["C"])
    archived = rep.add_client("Ada Byrne")
    assert rep.delete(f"/clients/{archived['id']}").status_code == 204
    resp = upload(rep, "plain_bom.csv")
    assert resp.json["created"] == 0 and resp.json["updated"] == 3, resp.json
    ada = rep.get(f"/clients/{by_phone['id']}").json
    assert (ada["name"], ada["notes"]) == ("Ada Byrne", 'Likes "straight talk"')
    assert rep.get(f"/clients/{by_email['id']}").json["cadence_days"] == 45
    # A blank cell erases nothing; tags are added to the client's own.
    chen = rep.get(f"/clients/{by_exact_name['id']}").json
    assert chen["tags"] == ["C"] and chen["company"] == "Ho Foods"


def test_tier_column_replaces_the_tier_tag(rep):
    client = rep.add_client("François Niño", tags=["C", "wine"])
    upload(rep, "plain_semicolon_cp1252.csv")
    assert rep.get(f"/clients/{client['id']}").json["tags"] == ["wine", "A"]


def test_duplicates_inside_one_file(rep):
    data = b"name,phone,notes\nAmy Ng,312 555 0111,first\nAmy Ng,(312) 555-0111,second\n"
    resp = upload(rep, "dupes.csv", data)
    assert (resp.json["created"], resp.json["updated"]) == (1, 1)
    assert by_name(rep)["Amy Ng"]["notes"] == "second"


def test_duplicates_far_apart_in_one_file(rep):
    """The first row was written a batch ago when its duplicate comes: still one client."""
    from webapp.services.imports import BATCH

    rows = [f"Client {i},312 555 {i:04d},,\n" for i in range(BATCH + 50)]
    rows.append("Someone Else,(312) 555-0007,seven@example.com,tier a\n")  # client 7's phone
    rows.append("Client 8,,,,\n")  # the same name, nothing new
    data = ("name,phone,email,tags\n" + "".join(rows)).encode()
    resp = upload(rep, "far.csv", data)
    assert resp.json == {"created": BATCH + 50, "updated": 1, "skipped": 1, "errors": []}
    (seven,) = rep.get("/clients", query_string={"q": "Someone Else"}).json["items"]
    assert seven["phone"] == "+13125550007" and seven["email"] == "seven@example.com"
    assert seven["tags"] == ["tier a"]
    assert upload(rep, "far.csv", data).json["created"] == 0


def test_odd_cells_are_row_problems_never_a_crash(rep):
    long_name = "N" * 201
    data = (
        "name,phone,email,cadence_days,tags\n"
        "Inf Cadence,,,1e999,\n"
        "NaN Cadence,,,nan,\n"
        "Half Cadence,,,2.5,\n"
        f"{long_name},,,,\n"
        "Long Phone," + "1" * 80 + ",,,\n"
        "Many Tags,,,," + '"' + ",".join(f"t{i}" for i in range(80)) + '"\n'
        "Long Email,,x@" + "e" * 260 + ".com,,\n"
    ).encode()
    resp = upload(rep, "odd.csv", data)
    assert resp.status_code == 200, resp.json
    lines = [(e["line"], e["message"].split(" ")[1]) for e in resp.json["errors"]]
    assert lines == [
        (2, "cadence"),
        (3, "cadence"),
        (4, "cadence"),
        (5, "name"),
        (6, "phone"),
        (8, "email"),
        (8, "is"),  # "x@eee…" is not an email address
    ], resp.json
    clients = by_name(rep)
    assert clients["Inf Cadence"]["cadence_days"] is None
    assert long_name not in clients
    assert len(clients["Long Phone"]["phone"]) == 64
    assert len(clients["Many Tags"]["tags"]) == 50
    assert clients["Long Email"]["email"] is None


def test_formula_guard_is_taken_off(rep):
    data = b"name,phone,notes\nAmy Ng,'+13125550111,'=not a formula\n"
    upload(rep, "guarded.csv", data)
    amy = by_name(rep)["Amy Ng"]
    assert (amy["phone"], amy["notes"]) == ("+13125550111", "=not a formula")


def test_bad_rows_are_reported_and_good_rows_import(rep):
    data = b'name,phone\nGood One,312 555 0100\n,312 555 0101\n"Broken, "x" row,1\nGood Two,\n'
    resp = upload(rep, "mixed.csv", data)
    assert resp.status_code == 200
    assert resp.json["created"] >= 2
    assert {"line": 3, "message": resp.json["errors"][0]["message"]} == resp.json["errors"][0]
    assert {"Good One", "Good Two"} <= set(by_name(rep))


@pytest.mark.parametrize(
    ("name", "status", "code"),
    [
        ("empty.csv", 422, "empty_file"),
        ("not_contacts.png", 415, "unsupported_file"),
        ("unknown_columns.csv", 415, "unsupported_file"),
    ],
)
def test_unreadable_files_are_4xx(rep, name, status, code):
    resp = upload(rep, name)
    assert resp.status_code == status, resp.json
    assert resp.json["error"]["code"] == code
    assert resp.json["error"]["message"]
    assert rep.get("/clients").json["items"] == []


def test_workbook_gets_a_helpful_message(rep):
    resp = upload(rep, "clients.xlsx", b"PK\x03\x04" + bytes(200))
    assert resp.status_code == 415
    assert "Save it as CSV" in resp.json["error"]["message"]


def test_missing_file_field(rep):
    resp = rep.post("/import", data={"other": "x"}, content_type="multipart/form-data")
    assert resp.status_code == 422
    assert "file" in resp.json["error"]["fields"]


def test_over_5_mb_is_413_and_up_to_5_mb_is_fine(rep):
    row = b"Client Name Here,312 555 0100,some notes about this client\n"
    header = b"name,phone,notes\n"
    body = header + row * ((5 * 1024 * 1024 - len(header)) // len(row))
    assert len(body) <= 5 * 1024 * 1024
    ok = upload(rep, "big.csv", body)
    assert ok.status_code == 200, ok.json  # above the app's 1 MB limit for other bodies
    too_big = upload(rep, "big.csv", body + b"x" * (5 * 1024 * 1024 - len(body) + 1))
    assert too_big.status_code == 413
    assert too_big.json["error"]["code"] == "too_large"
    way_too_big = upload(rep, "big.csv", body * 2)
    assert way_too_big.status_code == 413 and way_too_big.json["error"]["code"] == "too_large"


def test_other_routes_keep_the_1_mb_limit(rep):
    resp = rep.post("/clients", {"name": "x", "notes": "y" * (1024 * 1024 + 10)})
    assert resp.status_code == 413


def test_a_crash_leaves_nothing_behind(rep, monkeypatch):
    from webapp.services import imports

    calls = {"n": 0}
    real = imports._Merger.add

    def add_then_crash(self, line, values):
        calls["n"] += 1
        if calls["n"] == imports.BATCH + 10:  # after a batch was written
            raise RuntimeError("disk on fire")
        return real(self, line, values)

    monkeypatch.setattr(imports._Merger, "add", add_then_crash)
    rows = "".join(f"Client {i},312 555 {i:04d}\n" for i in range(imports.BATCH + 20))
    with pytest.raises(RuntimeError):
        upload(rep, "crash.csv", ("name,phone\n" + rows).encode())
    assert rep.get("/clients").json["items"] == []


def test_needs_login_and_csrf(app, rep):
    anonymous = app.test_client()
    data = {"file": (io.BytesIO(b"name\nA\n"), "a.csv")}
    resp = anonymous.post("/api/v1/import", data=data, content_type="multipart/form-data")
    assert resp.status_code in (400, 401)
    no_token = rep.client.post(
        "/api/v1/import",
        data={"file": (io.BytesIO(b"name\nA\n"), "a.csv")},
        content_type="multipart/form-data",
    )
    assert no_token.status_code == 400 and no_token.json["error"]["code"] == "csrf_failed"
