"""The phone app end to end: log in, today's list, one-tap logging, clients, settings."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import log_in, wait_until

# The README's screenshots: TOUCHBASE_SCREENSHOTS=docs/screenshots writes them there; a plain
# run keeps them in the test's temporary folder, so the suite never changes the checkout.
SHOTS_ENV = "TOUCHBASE_SCREENSHOTS"
IPHONE_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)


def test_log_in_and_log_left_message_tomorrow_with_taps(page, live_server, rep):
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda msg: errors.append(msg.text) if msg.type in ("warning", "error") else None,
    )
    dana = rep.add_client("Dana Doe", phone="+13125550100", company="Acme")
    rep.add_client("Eli Ever", phone="+13125550101")

    log_in(page, rep)
    rows = page.locator(".today-list .row")
    expect(rows).to_have_count(2)
    dana_row = rows.filter(has_text="Dana Doe")
    expect(dana_row).to_contain_text("Never contacted")
    expect(dana_row.get_by_role("link", name="Call Dana Doe")).to_have_attribute(
        "href", "tel:+13125550100"
    )
    expect(page.locator(".progress")).to_contain_text("0 of 10 calls")

    # Taps only: the row opens the card, "Log a call", "Left message", "Tomorrow", "Done".
    dana_row.locator(".row-main").click()
    expect(page.locator(".card-name")).to_have_text("Dana Doe")
    page.get_by_role("button", name="Log a call").click()
    page.get_by_role("button", name="Left message").click()
    page.get_by_role("button", name="Tomorrow").click()
    expect(page.get_by_role("button", name="Tomorrow")).to_have_attribute("aria-pressed", "true")
    page.get_by_role("button", name="Done").click()
    page.get_by_role("link", name="Today").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Eli Ever")
    expect(page.locator(".progress")).to_contain_text("1 of 10 calls")

    # The server gets exactly one touch, and the promise is due tomorrow at 09:00 Chicago.
    expect(page.locator("#sync-status")).to_have_text("All saved", timeout=20_000)
    touches = rep.touches(dana["id"])
    assert [t["outcome"] for t in touches] == ["left_message"]
    open_cbs = rep.callbacks("open")
    assert len(open_cbs) == 1
    tz = ZoneInfo("America/Chicago")
    due = datetime.fromisoformat(open_cbs[0]["due_at"]).astimezone(tz)
    assert due.date() == datetime.now(tz).date() + timedelta(days=1)
    assert (due.hour, due.minute) == (9, 0)
    assert [i["client"]["name"] for i in rep.today()["items"]] == ["Eli Ever"]
    assert errors == []


def test_installable(persistent_context, live_server):
    page = (
        persistent_context.pages[0] if persistent_context.pages else persistent_context.new_page()
    )
    page.goto(live_server.url + "/")
    wait_until(page, "() => navigator.serviceWorker.controller !== null")
    cdp = persistent_context.new_cdp_session(page)
    errors = cdp.send("Page.getInstallabilityErrors")["installabilityErrors"]
    assert errors == []
    manifest = cdp.send("Page.getAppManifest")
    assert not manifest.get("errors")


def test_offline_calls_survive_reload_and_sync_once(page, context, live_server, rep):
    ann = rep.add_client("Ann Offline", phone="+13125550111")
    bob = rep.add_client("Bob Offline", phone="+13125550112")
    log_in(page, rep)
    wait_until(page, "() => navigator.serviceWorker.controller !== null")
    expect(page.locator(".today-list .row")).to_have_count(2)

    context.set_offline(True)
    page.route("**/api/**", lambda route: route.abort())
    expect(page.locator("#offline-banner")).to_be_visible()
    for name, outcome in (("Ann Offline", "No answer"), ("Bob Offline", "Reached")):
        page.locator(".today-list .row", has_text=name).locator(".row-main").click()
        page.get_by_role("button", name="Log a call").click()
        page.get_by_role("button", name=outcome).click()
        page.get_by_role("button", name="Done").click()
        page.get_by_role("link", name="Today").click()
    expect(page.locator(".today-list .row")).to_have_count(0)
    expect(page.locator("#sync-status")).to_have_text("2 changes waiting to sync")

    # A reload while offline: the shell comes from the service worker, the data from IndexedDB.
    page.reload()
    expect(page.locator("#screen-title")).to_have_text("Today")
    expect(page.locator(".progress")).to_contain_text("2 of 10 calls")
    expect(page.locator(".today-list .row")).to_have_count(0)
    expect(page.locator("#sync-status")).to_have_text("2 changes waiting to sync")
    assert rep.touches() == []

    page.unroute("**/api/**")
    context.set_offline(False)
    expect(page.locator("#sync-status")).to_have_text("All saved", timeout=20_000)
    assert len(rep.touches(ann["id"])) == 1
    assert [t["outcome"] for t in rep.touches(bob["id"])] == ["reached"]
    assert len(rep.touches()) == 2
    # Another round of sync sends nothing twice.
    page.evaluate("window.dispatchEvent(new Event('online'))")
    page.reload()
    expect(page.locator("#sync-status")).to_have_text("All saved")
    assert len(rep.touches()) == 2


def test_update_toast_when_the_static_files_change(page, live_server, rep, tmp_path):
    import shutil

    from webapp import pwa

    staged = tmp_path / "static"
    shutil.copytree(pwa.DEFAULT_STATIC, staged)
    live_server.reload(STATIC_DIR=str(staged))
    log_in(page, rep)
    wait_until(page, "() => navigator.serviceWorker.controller !== null")
    first = live_server.fetch("/sw.js").headers["X-Shell-Version"]

    # A deploy: one shell file changes, the server restarts with it.
    css = staged / "css" / "app.css"
    css.write_text(css.read_text() + "\n/* deploy 2 */\n")
    live_server.reload(STATIC_DIR=str(staged))
    second = live_server.fetch("/sw.js").headers["X-Shell-Version"]
    assert second != first

    page.evaluate("navigator.serviceWorker.getRegistration().then((r) => r.update())")
    toast = page.locator(".toast", has_text="Update available")
    expect(toast).to_be_visible(timeout=20_000)
    toast.get_by_role("button", name="Reload").click()
    wait_until(page, "async (v) => (await caches.keys()).join() === 'touchbase-shell-' + v", second)
    expect(page.locator("#screen-title")).to_have_text("Today")


def _seed_a_morning(rep) -> dict:
    """A realistic morning: an overdue promise, a due check-in, a quiet client, a new one."""
    now = datetime.now(UTC)
    dana = rep.add_client(
        "Dana Doe",
        phone="+13125550100",
        email="dana@acme.example",
        company="Acme Supply",
        talking_points="Asked about the spring price list.\nHer team moves warehouse in May.",
        tags=["Tier A"],
    )
    rep.log_touch(
        dana["id"], "reached", happened_at=now - timedelta(days=9), note="Send the spring prices."
    )
    chicago = ZoneInfo("America/Chicago")
    two_days_ago = datetime.now(chicago).date() - timedelta(days=2)
    due = datetime.combine(two_days_ago, datetime.min.time().replace(hour=9), chicago)
    rep.add_callback(dana["id"], due, happened_at=now - timedelta(days=5))
    marco = rep.add_client("Marco Ruiz", phone="+13125550102", company="Ruiz Builders", tags=["A"])
    rep.log_touch(marco["id"], "reached", happened_at=now - timedelta(days=42))
    priya = rep.add_client("Priya Shah", phone="+13125550103", company="Northwind Traders")
    rep.log_touch(priya["id"], "reached", happened_at=now - timedelta(days=260))
    for days in (230, 220, 210):
        rep.log_touch(priya["id"], "no_answer", happened_at=now - timedelta(days=days))
    rep.add_client("Li Wei", phone="+13125550104", company="Blue Harbor Logistics")
    return {"dana": dana, "marco": marco, "priya": priya}


def test_reasons_and_screenshots(page, live_server, rep, tmp_path):
    shots = Path(os.environ.get(SHOTS_ENV) or tmp_path)
    _seed_a_morning(rep)
    log_in(page, rep)
    rows = page.locator(".today-list .row")
    expect(rows).to_have_count(4)
    expect(rows.nth(0)).to_contain_text("Dana Doe")
    expect(rows.nth(0)).to_contain_text(re.compile(r"Promised callback · \w+ 9:00 · overdue"))
    expect(rows.nth(1)).to_contain_text("Monthly check-in · 12 days overdue")
    expect(rows.filter(has_text="Priya Shah")).to_contain_text("No contact for 210 days")
    expect(rows.filter(has_text="Priya Shah")).to_contain_text("3rd try — keep going")
    expect(rows.filter(has_text="Li Wei")).to_contain_text("Never contacted")
    page.screenshot(path=shots / "today.png")

    rows.first.locator(".row-main").click()
    expect(page.locator(".card-name")).to_have_text("Dana Doe")
    expect(page.locator(".card-section", has_text="Last note")).to_contain_text(
        "Send the spring prices."
    )
    expect(page.locator(".history li")).to_have_count(2)
    page.screenshot(path=shots / "client-card.png")

    page.get_by_role("button", name="Log a call").click()
    expect(page.get_by_role("button", name="Reached")).to_be_visible()
    page.screenshot(path=shots / "outcome-sheet.png")
    page.get_by_role("button", name="Left message").click()
    expect(page.locator("#pick-summary")).not_to_be_empty()
    page.screenshot(path=shots / "quick-picks.png")


def test_back_from_dialling_opens_the_sheet_and_undo_takes_the_call_back(page, live_server, rep):
    dana = rep.add_client("Dana Doe", phone="+13125550100")
    log_in(page, rep)
    # The tel: link leaves for the phone app; here it goes nowhere, the page stays.
    page.evaluate(
        "() => document.addEventListener('click', (e) => {"
        " if (e.target.closest('a[href^=\"tel:\"]')) e.preventDefault(); }, true)"
    )
    page.get_by_role("link", name="Call Dana Doe").click()
    # Coming back to the app: the page turns visible again.
    page.evaluate(
        "() => { Object.defineProperty(document, 'visibilityState', {value: 'visible',"
        " configurable: true}); document.dispatchEvent(new Event('visibilitychange')); }"
    )
    expect(page.get_by_role("dialog")).to_contain_text("How did it go with Dana Doe?")
    page.get_by_role("button", name="No answer").click()
    expect(page.locator(".today-list .row")).to_have_count(0)
    expect(page.locator(".progress")).to_contain_text("1 of 10 calls")
    page.get_by_role("button", name="Undo").click()
    expect(page.locator(".toast", has_text="Call removed.")).to_be_visible()
    expect(page.locator(".today-list .row")).to_have_count(1)
    expect(page.locator(".progress")).to_contain_text("0 of 10 calls")
    expect(page.locator("#sync-status")).to_have_text("All saved")
    page.reload()
    expect(page.locator(".today-list .row")).to_have_count(1)
    assert rep.touches(dana["id"]) == []


def test_add_client_offline_then_search_edit_and_archive(page, context, live_server, rep):
    log_in(page, rep)
    wait_until(page, "() => navigator.serviceWorker.controller !== null")
    context.set_offline(True)
    page.route("**/api/**", lambda route: route.abort())
    page.get_by_role("link", name="Clients").click()
    page.get_by_role("link", name="Add client").click()
    page.get_by_label("Name").fill("Olga Offline")
    page.get_by_label("Phone").fill("+13125550199")
    page.get_by_label("Company").fill("Fjord Foods")
    page.get_by_label("Tier").select_option("B")
    page.get_by_role("button", name="Add client").click()
    expect(page.locator(".card-name")).to_have_text("Olga Offline")
    expect(page.locator(".facts")).to_contain_text("Quarterly")

    page.get_by_role("link", name="Clients").click()
    page.get_by_label("Search clients").fill("fjord")
    expect(page.locator(".client-list .row")).to_have_count(1)
    page.get_by_label("Search clients").fill("nobody")
    expect(page.locator(".client-list .row")).to_have_count(0)

    page.unroute("**/api/**")
    context.set_offline(False)
    expect(page.locator("#sync-status")).to_have_text("All saved", timeout=20_000)
    [olga] = rep.clients()
    assert (olga["name"], olga["company"], olga["tags"]) == (
        "Olga Offline",
        "Fjord Foods",
        ["Tier B"],
    )

    page.goto(f"/#/clients/{olga['id']}/edit")
    page.get_by_label("Company").fill("Fjord Foods AS")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator(".card-head")).to_contain_text("Fjord Foods AS")
    page.get_by_role("link", name="Edit or archive").click()
    page.get_by_role("button", name="Archive client").click()
    expect(page.locator("#sync-status")).to_have_text("All saved", timeout=20_000)
    assert rep.client(olga["id"])["company"] == "Fjord Foods AS"
    assert rep.client(olga["id"])["archived_at"] is not None
    assert rep.clients() == []


def test_settings_and_a_refused_change_is_shown_not_dropped(page, live_server, rep):
    dana = rep.add_client("Dana Doe", phone="+13125550100")
    log_in(page, rep)
    page.get_by_role("link", name="Settings").click()
    expect(page.locator("#push-settings")).to_have_count(1)
    expect(page.get_by_label("Time zone")).to_have_value("America/Chicago")
    page.get_by_label("Daily goal (calls)").fill("6")
    page.get_by_label("Quiet hours (no reminders)").uncheck()
    page.get_by_label("Reconnect after (days without contact)").fill("60")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#sync-status")).to_have_text("All saved", timeout=20_000)
    me = rep.me()
    assert (me["daily_goal"], me["quiet_hours"], me["reconnect_after_days"]) == (6, None, 60)
    page.get_by_role("link", name="Today").click()
    expect(page.locator(".progress")).to_contain_text("0 of 6 calls")

    # A change the server refuses for good (409: the same id with another body) stays visible.
    taken = rep.log_touch(dana["id"], "no_answer")["id"]
    page.evaluate(
        """async ([touchId, clientId]) => {
            const outbox = await import('/static/js/outbox.js');
            outbox.add({kind: 'touch', method: 'POST', path: '/touches', label: 'Test call',
                body: {id: touchId, client_id: clientId, outcome: 'reached'}});
            await outbox.flush();
        }""",
        [taken, dana["id"]],
    )
    expect(page.locator("#sync-status")).to_have_text("1 change failed")
    expect(page.locator(".failed")).to_contain_text("Test call")
    page.get_by_role("button", name="Discard").click()
    expect(page.locator("#sync-status")).to_have_text("All saved")


def test_a_lost_session_sends_the_rep_to_log_in_and_keeps_the_outbox(
    page, context, live_server, rep
):
    dana = rep.add_client("Dana Doe", phone="+13125550100")
    log_in(page, rep)
    expect(page.locator(".today-list .row")).to_have_count(1)
    context.set_offline(True)
    page.route("**/api/**", lambda route: route.abort())
    page.locator(".today-list .row .row-main").click()
    page.get_by_role("button", name="Log a call").click()
    page.get_by_role("button", name="Reached").click()
    page.get_by_role("button", name="Done").click()
    expect(page.locator("#sync-status")).to_have_text("1 change waiting to sync")

    context.clear_cookies()  # the session is gone (expired, or logged out elsewhere)
    page.unroute("**/api/**")
    context.set_offline(False)
    expect(page.locator(".notice")).to_contain_text(
        "1 change(s) kept on this phone", timeout=20_000
    )
    assert rep.touches() == []
    page.get_by_label("Email").fill(rep.email)
    page.get_by_label("Password").fill(rep.password)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#sync-status")).to_have_text("All saved", timeout=20_000)
    assert [t["outcome"] for t in rep.touches(dana["id"])] == ["reached"]


def test_a_new_pick_after_the_call_was_sent_snoozes_then_cancels(page, live_server, rep):
    page.clock.install(time=datetime.now(UTC))
    dana = rep.add_client("Dana Doe", phone="+13125550100")
    log_in(page, rep)
    page.locator(".today-list .row .row-main").click()
    page.get_by_role("button", name="Log a call").click()
    page.get_by_role("button", name="Left message").click()
    expect(page.locator("#sync-status")).to_have_text("1 change waiting to sync")
    # The sheet stayed open past the hold (two minutes): the call goes with its suggestion.
    page.clock.fast_forward("02:10")
    expect(page.locator("#sync-status")).to_have_text("All saved", timeout=20_000)
    [touch] = rep.touches(dana["id"])
    [promise] = rep.callbacks("open")
    assert promise["id"] == touch["callback_id"]

    page.get_by_role("button", name="Next week").click()
    expect(page.get_by_role("button", name="Next week")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#sync-status")).to_have_text("All saved", timeout=20_000)
    tz = ZoneInfo("America/Chicago")
    [moved] = rep.callbacks("open")
    due = datetime.fromisoformat(moved["due_at"]).astimezone(tz)
    assert moved["id"] == promise["id"]
    assert (due.weekday(), due.hour) == (0, 9)

    page.get_by_role("button", name="None").click()
    expect(page.locator("#sync-status")).to_have_text("All saved", timeout=20_000)
    assert rep.callbacks("open") == []
    # Undo is no longer possible: the call is on the server; the app says so instead.
    page.get_by_role("button", name="Undo").click()
    expect(page.locator(".toast", has_text="can't be undone")).to_be_visible()
    assert len(rep.touches(dana["id"])) == 1


def test_a_pick_after_a_call_sent_without_a_promise_makes_one(page, live_server, rep):
    page.clock.install(time=datetime.now(UTC))
    dana = rep.add_client("Dana Doe", phone="+13125550100")
    log_in(page, rep)
    page.locator(".today-list .row .row-main").click()
    page.get_by_role("button", name="Log a call").click()
    # Reached, and Dana has no rhythm: the rules suggest no promise.
    page.get_by_role("button", name="Reached").click()
    page.clock.fast_forward("02:10")
    expect(page.locator("#sync-status")).to_have_text("All saved", timeout=20_000)
    [touch] = rep.touches(dana["id"])
    assert touch["callback_id"] is None and rep.callbacks("open") == []

    page.get_by_role("button", name="Next week").click()
    expect(page.locator("#sync-status")).to_have_text("All saved", timeout=20_000)
    [promise] = rep.callbacks("open")
    due = datetime.fromisoformat(promise["due_at"]).astimezone(ZoneInfo("America/Chicago"))
    assert promise["client_id"] == dana["id"] and (due.weekday(), due.hour) == (0, 9)
    # A second change moves that same promise.
    page.get_by_role("button", name="Tomorrow").click()
    expect(page.locator("#sync-status")).to_have_text("All saved", timeout=20_000)
    [moved] = rep.callbacks("open")
    assert moved["id"] == promise["id"] and moved["due_at"] != promise["due_at"]


def test_a_call_logged_offline_survives_a_browser_restart(
    playwright, browser_type_launch_args, live_server, rep, tmp_path
):
    dana = rep.add_client("Dana Doe", phone="+13125550100")
    profile = str(tmp_path / "profile")
    phone = {
        "viewport": {"width": 390, "height": 844},
        "is_mobile": True,
        "has_touch": True,
        "timezone_id": "America/Chicago",
        "base_url": live_server.url,
    }
    context = playwright.chromium.launch_persistent_context(
        profile, **browser_type_launch_args, **phone
    )
    page = context.pages[0] if context.pages else context.new_page()
    log_in(page, rep)
    expect(page.locator(".today-list .row")).to_have_count(1)
    wait_until(page, "() => navigator.serviceWorker.controller !== null")
    context.set_offline(True)
    page.route("**/api/**", lambda route: route.abort())
    page.locator(".today-list .row .row-main").click()
    page.get_by_role("button", name="Log a call").click()
    page.get_by_role("button", name="No answer").click()
    page.get_by_role("button", name="Done").click()
    expect(page.locator("#sync-status")).to_have_text("1 change waiting to sync")
    context.close()  # the whole browser goes away with the call still on the phone
    assert rep.touches() == []

    context = playwright.chromium.launch_persistent_context(
        profile, **browser_type_launch_args, **phone
    )
    try:
        page = context.pages[0] if context.pages else context.new_page()
        page.goto("/")
        expect(page.locator("#sync-status")).to_have_text("All saved", timeout=20_000)
        assert [t["outcome"] for t in rep.touches(dana["id"])] == ["no_answer"]
    finally:
        context.close()


def test_changes_from_another_device_arrive_by_sync(page, live_server, rep):
    dana = rep.add_client("Dana Doe", phone="+13125550100")
    log_in(page, rep)
    expect(page.locator(".today-list .row")).to_have_count(1)

    # The laptop: a new client, a call to Dana, a new daily goal.
    rep.add_client("Lars Laptop", phone="+13125550150")
    rep.log_touch(dana["id"], "reached")
    rep.update_me(daily_goal=8)
    # Coming back to the app syncs.
    page.evaluate("() => document.dispatchEvent(new Event('visibilitychange'))")
    rows = page.locator(".today-list .row")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Lars Laptop")
    expect(page.locator(".progress")).to_contain_text("1 of 8 calls")


@pytest.mark.browser_context_args(user_agent=IPHONE_UA)
def test_ios_safari_gets_add_to_home_screen_help(page, live_server, rep):
    log_in(page, rep)
    page.get_by_role("link", name="Settings").click()
    expect(page.locator(".ios-help")).to_contain_text("Add to Home Screen")
    expect(page.get_by_role("heading", name="Reminders (push notifications)")).to_be_visible()


def test_log_out_forgets_the_local_copy(page, live_server, rep):
    rep.add_client("Dana Doe", phone="+13125550100")
    log_in(page, rep)
    expect(page.locator(".today-list .row")).to_have_count(1)
    page.get_by_role("link", name="Settings").click()
    page.get_by_role("button", name="Log out", exact=True).click()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    assert page.request.get("/api/v1/me").status == 401
    page.reload()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    left = page.evaluate(
        """() => new Promise((resolve) => {
            const req = indexedDB.open('touchbase');
            req.onsuccess = () => {
                const tx = req.result.transaction('clients');
                const count = tx.objectStore('clients').count();
                count.onsuccess = () => resolve(count.result);
            };
        })"""
    )
    assert left == 0
