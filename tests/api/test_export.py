"""CSV exports: UTF-8 with BOM for Excel, only the rep's own rows, and a lossless round trip."""

from __future__ import annotations

import csv
import io

from tests.api.test_import import by_name, upload


def rows(resp) -> list[dict[str, str]]:
    text = resp.get_data().decode("utf-8")
    assert text.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(text[1:])))


def test_clients_csv_is_excel_friendly(rep):
    rep.add_client("Zoë Lefèvre", phone="312 555 0100", company="Café Crème", tags=["A", "vip"])
    resp = rep.get("/export/clients.csv")
    assert resp.status_code == 200
    assert resp.mimetype == "text/csv" and resp.mimetype_params["charset"] == "utf-8"
    assert resp.headers["Content-Disposition"].startswith("attachment;")
    assert resp.headers["Cache-Control"] == "no-store"
    (row,) = rows(resp)
    assert row["name"] == "Zoë Lefèvre" and row["company"] == "Café Crème"
    assert row["tags"] == "A, vip"
    assert row["phone"] == "'+13125550100"  # guarded: Excel would make it 1.31E+10, or a formula


def test_formula_injection_is_guarded(rep):
    rep.add_client('=HYPERLINK("http://evil.example","x")', notes="@SUM(1+1)", company="-2+3")
    (row,) = rows(rep.get("/export/clients.csv"))
    for key in ("name", "notes", "company"):
        assert row[key].startswith("'"), row


def test_round_trip_changes_nothing(rep):
    upload(rep, "google_contacts.csv")
    upload(rep, "android_contacts.vcf")
    rep.add_client("'quoted' = tricky", notes="+1 call back\nline two", email="a@b.example")
    rep.add_client("Same Name", notes="first")
    rep.add_client("Same Name", notes="second", cadence_days=12, tags=["tier b", "x, y", 'q"t'])
    before = by_name(rep)
    exported = rep.get("/export/clients.csv").get_data()
    again = upload(rep, "clients.csv", exported)
    assert again.status_code == 200
    assert (again.json["created"], again.json["updated"]) == (0, 0), again.json
    assert again.json["skipped"] == len(rep.get("/clients").json["items"])
    assert by_name(rep) == before


def test_round_trip_into_an_empty_account_recreates_the_clients(app, rep, other_rep):
    upload(rep, "plain_bom.csv")
    exported = rep.get("/export/clients.csv").get_data()
    resp = upload(other_rep, "clients.csv", exported)
    assert resp.json["created"] == 3
    fields = ("name", "phone", "email", "company", "notes", "tags", "cadence_days")
    mine = {n: {f: c[f] for f in fields} for n, c in by_name(rep).items()}
    theirs = {n: {f: c[f] for f in fields} for n, c in by_name(other_rep).items()}
    assert mine == theirs


def test_touches_csv(rep, other_rep):
    client = rep.add_client("Ada Byrne", phone="312 555 0101")
    assert rep.touch(client["id"], "reached", note="=budget next week").status_code == 201
    other = other_rep.add_client("Bea Other")
    assert other_rep.touch(other["id"], "reached", note="secret").status_code == 201
    resp = rep.get("/export/touches.csv")
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    (row,) = rows(resp)
    assert row["client_name"] == "Ada Byrne" and row["outcome"] == "reached"
    assert row["note"] == "'=budget next week"
    assert "secret" not in resp.get_data(as_text=True)


def test_only_own_clients(rep, other_rep):
    rep.add_client("Mine Only")
    other_rep.add_client("Not Yours")
    text = rep.get("/export/clients.csv").get_data(as_text=True)
    assert "Mine Only" in text and "Not Yours" not in text


def test_needs_login(app):
    for path in ("/api/v1/export/clients.csv", "/api/v1/export/touches.csv"):
        resp = app.test_client().get(path)
        assert resp.status_code == 401 and resp.json["error"]["code"] == "unauthorized"
