"""Settings → Your data on the phone: pick a file to import, download the exports, offline.

At 390 x 844 like every browser test. The file picker is driven with ``set_input_files``, as a
rep's tap on "Choose file" and a pick from the phone's files would fill it.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from playwright.sync_api import expect

from tests.browser.conftest import log_in, wait_until

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "imports"


def pick(page, path: Path) -> None:
    page.get_by_label("Choose a CSV or vCard file").set_input_files(path)


def open_settings(page, rep) -> None:
    log_in(page, rep)
    page.get_by_role("link", name="Settings").click()
    expect(page.get_by_role("heading", name="Import contacts")).to_be_visible()


def test_import_shows_counts_and_problems_and_fills_the_client_list(
    page, live_server, rep, tmp_path
):
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    ben = rep.add_client("Ben Osei", email="ben@osei.example")  # the file updates him
    open_settings(page, rep)
    wait_until(page, "() => navigator.serviceWorker.controller !== null")

    pick(page, FIXTURES / "plain_bom.csv")
    result = page.locator(".import-summary")
    expect(result).to_contain_text("plain_bom.csv")
    expect(result.locator(".count.created")).to_have_text("2 added")
    expect(result.locator(".count.updated")).to_have_text("1 updated")
    expect(result.locator(".count.skipped")).to_have_text("0 unchanged")
    problems = result.locator(".problems li")
    expect(problems).to_have_count(1)
    expect(problems.first).to_have_text(
        'Line 4: "not-an-email" is not an email address; it was left out.'
    )
    expect(result.locator(".problems")).to_have_attribute("open", "")
    shots = Path(os.environ.get("TOUCHBASE_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    result.scroll_into_view_if_needed()
    page.screenshot(path=shots / "import-result.png")

    # The phone's own copy is refreshed: the new clients are in the list at once.
    result.get_by_role("link", name="See your clients").click()
    rows = page.locator(".client-list .row")
    expect(rows).to_have_count(3)
    expect(page.locator(".client-list")).to_contain_text("Ada Byrne")
    expect(page.locator(".client-list")).to_contain_text("Chen Ho")
    assert rep.client(ben["id"])["cadence_days"] == 45
    assert errors == []


def test_an_unreadable_file_says_why_and_changes_nothing(page, live_server, rep):
    open_settings(page, rep)
    pick(page, FIXTURES / "unknown_columns.csv")
    alert = page.locator(".import-status [role=alert]")
    expect(alert).to_contain_text("No known columns in the first row")
    assert rep.clients() == []


def test_a_file_over_5_mb_is_refused_before_it_is_sent(page, live_server, rep, tmp_path):
    big = tmp_path / "big.csv"
    big.write_bytes(b"name,phone\n" + b"Client Name,312 555 0100\n" * 220_000)
    assert big.stat().st_size > 5 * 1024 * 1024
    open_settings(page, rep)
    sent: list[str] = []
    page.on("request", lambda req: sent.append(req.url) if "/import" in req.url else None)
    pick(page, big)
    alert = page.locator(".import-status [role=alert]")
    expect(alert).to_have_text("The file is larger than 5 MB. Split it and import the parts.")
    assert sent == [] and rep.clients() == []


def test_downloads_give_the_csv_and_reimporting_it_changes_nothing(
    page, live_server, rep, tmp_path
):
    dana = rep.add_client("Zoë Lefèvre", phone="312 555 0100", company="Café Crème", tags=["A"])
    rep.add_client("=Formula Guard", notes="+1 call back")
    rep.log_touch(dana["id"], "reached", note="Wants spring prices")
    open_settings(page, rep)

    with page.expect_download() as info:
        page.get_by_role("link", name="Download clients (CSV)").click()
    download = info.value
    assert download.suggested_filename == "touchbase-clients.csv"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    raw = saved.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # the BOM: Excel reads it as UTF-8
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert [r["name"] for r in rows] == ["'=Formula Guard", "Zoë Lefèvre"]
    assert rows[1]["company"] == "Café Crème" and rows[1]["phone"] == "'+13125550100"

    with page.expect_download() as info:
        page.get_by_role("link", name="Download call log (CSV)").click()
    calls = tmp_path / info.value.suggested_filename
    info.value.save_as(calls)
    (call,) = csv.DictReader(io.StringIO(calls.read_bytes().decode("utf-8-sig")))
    assert (call["client_name"], call["note"]) == ("Zoë Lefèvre", "Wants spring prices")

    before = rep.clients()
    pick(page, saved)
    result = page.locator(".import-summary")
    expect(result.locator(".count.created")).to_have_text("0 added")
    expect(result.locator(".count.updated")).to_have_text("0 updated")
    expect(result.locator(".count.skipped")).to_have_text("2 unchanged")
    expect(result.locator(".problems")).to_have_count(0)
    assert rep.clients() == before


def test_offline_import_says_so_keeps_the_file_and_retries(
    page, context, live_server, rep, tmp_path
):
    open_settings(page, rep)
    wait_until(page, "() => navigator.serviceWorker.controller !== null")
    context.set_offline(True)
    page.route("**/api/**", lambda route: route.abort())
    pick(page, FIXTURES / "google_contacts.csv")
    alert = page.locator(".import-status [role=alert]")
    expect(alert).to_contain_text("No connection")
    expect(alert).to_contain_text("nothing was imported")
    expect(page.locator(".import-summary")).to_have_count(0)
    assert page.get_by_label("Choose a CSV or vCard file").evaluate("i => i.files[0].name") == (
        "google_contacts.csv"
    )
    shots = Path(os.environ.get("TOUCHBASE_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    alert.scroll_into_view_if_needed()
    page.screenshot(path=shots / "import-offline.png")
    assert rep.clients() == []
    # Downloads need the server too: said plainly, not a broken download.
    page.get_by_role("link", name="Download clients (CSV)").click()
    expect(page.locator(".export-status [role=alert]")).to_contain_text("No connection")

    page.unroute("**/api/**")
    context.set_offline(False)
    page.get_by_role("button", name="Try again").click()
    expect(page.locator(".import-summary .count.created")).to_have_text("4 added")
    assert len(rep.clients()) == 4
    page.get_by_role("link", name="Clients", exact=True).click()
    expect(page.locator(".client-list .row")).to_have_count(4)
