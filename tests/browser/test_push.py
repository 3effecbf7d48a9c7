"""Push reminders on the phone: the settings switch, the worker's push and notification handlers.

The worker's handlers are plain functions (``self.touchbase`` in sw.js) because a notification
click cannot be synthesised: a script-made ExtendableEvent cannot ``waitUntil``. The tests call
them in the real worker through DevTools (Playwright's service worker handle), and deliver real
push events with ``ServiceWorker.deliverPushMessage``.
"""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from playwright.sync_api import expect

from tests.browser.conftest import log_in as log_in_form
from tests.browser.conftest import wait_until

IPHONE_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
CHICAGO = ZoneInfo("America/Chicago")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def fake_subscription() -> dict:
    """A subscription as a browser would post it: an allowed push service, real P-256 keys.

    Nothing is ever sent to it: no dispatcher runs in the browser tests.
    """
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    point = key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return {
        "endpoint": f"https://fcm.googleapis.com/fcm/send/{secrets.token_urlsafe(16)}",
        "keys": {"p256dh": b64url(point), "auth": b64url(secrets.token_bytes(16))},
    }


def log_in(page, rep) -> None:
    """Log in, then wait until the worker controls the page and everything is synced."""
    log_in_form(page, rep)
    wait_until(page, "() => navigator.serviceWorker.controller !== null")
    expect(page.locator("#sync-status")).to_have_text("All saved", timeout=20_000)


def worker(page):
    """The app's service worker, for ``evaluate`` inside it."""
    context = page.context
    for sw in context.service_workers:
        if sw.url.endswith("/sw.js"):
            return sw
    return context.wait_for_event("serviceworker")


def outbox(page) -> list[dict]:
    return page.evaluate(
        """() => new Promise((resolve, reject) => {
            const req = indexedDB.open("touchbase");
            req.onerror = () => reject(req.error);
            req.onsuccess = () => {
                const all = req.result.transaction("outbox").objectStore("outbox").getAll();
                all.onsuccess = () => resolve(all.result);
                all.onerror = () => reject(all.error);
            };
        })"""
    )


def reminder_payload(callback: dict, name: str) -> dict:
    """What webapp/dispatch.py's reminder() sends for a callback."""
    return {
        "title": f"Call {name}",
        "body": "You said you'd call back tomorrow at 9:00 AM",
        "url": f"/#/clients/{callback['client_id']}",
        "callback_id": callback["id"],
        "client_id": callback["client_id"],
        "tag": f"callback-{callback['id']}",
    }


def test_switch_asks_on_tap_and_shows_the_browsers_refusal(page, context, live_server, rep):
    """Headless Chromium cannot subscribe: in an incognito context (Playwright's ordinary one)
    pushManager.subscribe fails at once with "AbortError: Registration failed - permission
    denied"; with a profile and no network it never answers. So the switch's honest outcome
    here is its error state: off, the browser's reason shown, nothing stored on the server."""
    log_in(page, rep)
    page.get_by_role("link", name="Settings").click()
    switch = page.get_by_role("switch", name="Reminders")
    expect(switch).not_to_be_checked()
    expect(page.locator("#push-state")).to_have_text("Off: this phone shows no reminders.")
    # Nothing was asked before the tap.
    assert page.evaluate("Notification.permission") == "default"

    context.grant_permissions(["notifications"], origin=live_server.url)
    switch.click()
    expect(page.locator("#push-message")).to_contain_text(
        "This browser could not turn reminders on: Registration failed"
    )
    expect(switch).not_to_be_checked()
    expect(switch).to_be_enabled()
    assert (
        page.evaluate(
            "async () => (await navigator.serviceWorker.ready).pushManager.getSubscription()"
        )
        is None
    )
    with live_server.app.app_context():
        from webapp.db import db
        from webapp.models import push_subscriptions

        assert db.session.execute(push_subscriptions.select()).all() == []


def test_test_button_says_how_many_devices(page, live_server, rep):
    assert rep.api.post("/push/subscriptions", fake_subscription()).status == 201
    assert rep.api.post("/push/subscriptions", fake_subscription()).status == 201
    log_in(page, rep)
    page.get_by_role("link", name="Settings").click()
    expect(page.get_by_role("heading", name="Your data")).to_be_visible()  # import-export.js
    page.get_by_role("button", name="Send a test notification").click()
    expect(page.locator("#push-test-result")).to_have_text("Sent to 2 devices.")


def test_blocked_and_unsupported_states(page, context, live_server, rep):
    log_in(page, rep)
    page.get_by_role("link", name="Settings").click()
    expect(page.locator("#push-state")).to_have_text("Off: this phone shows no reminders.")
    # Chromium's own "denied" (a real permission state, set over DevTools).
    cdp = context.new_cdp_session(page)
    context_id = cdp.send("Target.getTargetInfo")["targetInfo"]["browserContextId"]
    cdp.send(
        "Browser.setPermission",
        {
            "permission": {"name": "notifications"},
            "setting": "denied",
            "origin": live_server.url,
            "browserContextId": context_id,
        },
    )
    page.get_by_role("link", name="Today").click()
    page.get_by_role("link", name="Settings").click()
    expect(page.locator("#push-state")).to_have_text(
        "Blocked in browser settings — here is how to allow:"
    )
    expect(page.locator(".push-help")).to_contain_text("Notifications to Allow")
    expect(page.get_by_role("switch", name="Reminders")).to_be_disabled()


@pytest.mark.browser_context_args(user_agent=IPHONE_UA)
def test_iphone_in_safari_is_told_to_add_to_home_screen(page, rep):
    log_in(page, rep)
    page.get_by_role("link", name="Settings").click()
    expect(page.locator("#push-state")).to_contain_text("Add to Home Screen")
    expect(page.get_by_role("switch", name="Reminders")).to_be_disabled()


def test_push_shows_the_reminder_with_its_buttons(page, context, live_server, rep, sw_cdp):
    context.grant_permissions(["notifications"], origin=live_server.url)
    dana = rep.add_client("Dana Doe", phone="+13125550100")
    cb = rep.add_callback(dana["id"], datetime.now(UTC) + timedelta(days=1))
    log_in(page, rep)
    cdp = sw_cdp(page)

    cdp.deliver_push(reminder_payload(cb, "Dana Doe"))
    shown = wait_until(
        page, "async () => (await (await navigator.serviceWorker.ready).getNotifications()).length"
    )
    assert shown == 1
    [note] = cdp.notifications()
    assert note["title"] == "Call Dana Doe"
    assert note["body"] == "You said you'd call back tomorrow at 9:00 AM"
    assert note["tag"] == f"callback-{cb['id']}"
    assert note["data"] == {
        "url": f"/#/clients/{dana['id']}",
        "callback_id": cb["id"],
        "client_id": dana["id"],
    }
    assert note["actions"] == [
        {"action": "called", "title": "Called"},
        {"action": "tomorrow", "title": "Tomorrow"},
    ]

    # The same reminder again replaces it (same tag), it does not stack.
    cdp.deliver_push(reminder_payload(cb, "Dana Doe"))
    page.wait_for_timeout(300)
    assert len(cdp.notifications()) == 1


def test_test_push_and_broken_pushes_still_show_something(page, context, live_server, rep, sw_cdp):
    context.grant_permissions(["notifications"], origin=live_server.url)
    log_in(page, rep)
    cdp = sw_cdp(page)
    count = "async () => (await (await navigator.serviceWorker.ready).getNotifications()).length"

    cdp.deliver_push(
        {
            "title": "Touchbase",
            "body": "Notifications are on. Reminders will look like this.",
            "url": "/#/settings",
            "callback_id": None,
            "client_id": None,
            "tag": "touchbase-test",
        }
    )
    wait_until(page, f"async () => (await ({count})()) === 1")
    [test] = cdp.notifications()
    assert test["tag"] == "touchbase-test"
    assert test["data"]["url"] == "/#/settings"
    assert test["actions"] == []  # nothing to mark as called

    cdp.deliver_push("this is not JSON {")
    wait_until(page, f"async () => (await ({count})()) === 2")
    generic = [n for n in cdp.notifications() if n["tag"] == "touchbase"]
    assert len(generic) == 1
    assert generic[0]["title"] == "Touchbase"
    assert generic[0]["data"]["url"] == "/"
    assert generic[0]["actions"] == []

    cdp.deliver_push(
        {"title": "Call X", "url": "https://evil.example/", "client_id": "../x", "tag": "x"}
    )
    wait_until(page, f"async () => (await ({count})()) === 3")
    odd = next(n for n in cdp.notifications() if n["title"] == "Call X")
    assert odd["data"] == {"url": "/", "callback_id": None, "client_id": None}


def test_called_goes_through_the_outbox_and_reaches_the_server_once(
    page, context, live_server, rep
):
    dana = rep.add_client("Dana Doe", phone="+13125550100")
    cb = rep.add_callback(dana["id"], datetime.now(UTC) + timedelta(hours=2))
    log_in(page, rep)
    sw = worker(page)

    # Offline: the action is kept in the app's outbox, as a reached touch.
    context.set_offline(True)
    page.route("**/api/**", lambda route: route.abort())
    done = sw.evaluate(
        "(data) => self.touchbase.onClick('called', data)",
        {"url": f"/#/clients/{dana['id']}", "callback_id": cb["id"], "client_id": dana["id"]},
    )
    assert done["kind"] == "called"
    assert done["result"]["sent"] == "offline"
    [entry] = outbox(page)
    assert entry["kind"] == "touch"
    assert entry["method"] == "POST" and entry["path"] == "/touches"
    assert entry["body"]["outcome"] == "reached"
    assert entry["body"]["client_id"] == dana["id"]
    assert entry["body"]["id"] == done["result"]["touchId"]
    # The open app took it in (the worker told it): it counts as waiting.
    expect(page.locator("#sync-status")).to_contain_text("1", timeout=10_000)

    # Back online: sent once, and a reload (the app's start-up replay) sends nothing more.
    page.unroute("**/api/**")
    context.set_offline(False)
    expect(page.locator("#sync-status")).to_have_text("All saved", timeout=20_000)
    page.reload()
    expect(page.locator("#sync-status")).to_have_text("All saved", timeout=20_000)
    assert outbox(page) == []
    reached = [t for t in rep.touches(dana["id"]) if t["outcome"] == "reached"]
    assert [t["id"] for t in reached] == [done["result"]["touchId"]]
    assert [c["id"] for c in rep.callbacks("open")] == []  # the call fulfilled the promise


def test_called_online_is_sent_by_the_worker_at_once(page, live_server, rep):
    dana = rep.add_client("Dana Doe", phone="+13125550100")
    cb = rep.add_callback(dana["id"], datetime.now(UTC) + timedelta(hours=2))
    log_in(page, rep)
    page.close()  # no window open: the worker alone sends it
    sw = worker(page)
    done = sw.evaluate(
        "(data) => self.touchbase.onClick('called', data)",
        {"url": f"/#/clients/{dana['id']}", "callback_id": cb["id"], "client_id": dana["id"]},
    )
    assert done["result"]["sent"] == "empty"
    reached = [t for t in rep.touches(dana["id"]) if t["outcome"] == "reached"]
    assert [t["id"] for t in reached] == [done["result"]["touchId"]]
    assert rep.callbacks("open") == []


def test_tomorrow_snoozes_the_promise_to_tomorrow_at_the_call_time(page, live_server, rep):
    rep.update_me(call_time="07:45")
    dana = rep.add_client("Dana Doe", phone="+13125550100")
    cb = rep.add_callback(dana["id"], datetime.now(UTC) + timedelta(minutes=5))
    log_in(page, rep)
    sw = worker(page)
    done = sw.evaluate(
        "(data) => self.touchbase.onClick('tomorrow', data)",
        {"url": f"/#/clients/{dana['id']}", "callback_id": cb["id"], "client_id": dana["id"]},
    )
    assert done["kind"] == "tomorrow"
    assert done["result"]["sent"] == "empty"
    [moved] = rep.callbacks("open")
    assert moved["id"] == cb["id"]
    due = datetime.fromisoformat(moved["due_at"]).astimezone(CHICAGO)
    assert due.date() == datetime.now(CHICAGO).date() + timedelta(days=1)
    assert (due.hour, due.minute) == (7, 45)
    assert rep.touches(dana["id"])[0]["outcome"] == "left_message"  # no call was logged
    expect(page.locator("#sync-status")).to_have_text("All saved", timeout=20_000)
    assert outbox(page) == []


def test_plain_tap_opens_the_clients_card(page, live_server, rep):
    dana = rep.add_client("Dana Doe", phone="+13125550100", company="Acme")
    log_in(page, rep)
    sw = worker(page)
    done = sw.evaluate(
        "(data) => self.touchbase.onClick('', data)",
        {"url": f"/#/clients/{dana['id']}", "callback_id": None, "client_id": dana["id"]},
    )
    assert done == {
        "kind": "open",
        "url": f"{live_server.url}/#/clients/{dana['id']}",
        "window": "existing",
    }
    expect(page.locator(".card-name")).to_have_text("Dana Doe")
    assert page.evaluate("location.hash") == f"#/clients/{dana['id']}"


def test_digest_and_weekly_switches_save_like_other_settings(page, context, live_server, rep):
    log_in(page, rep)
    page.get_by_role("link", name="Settings").click()
    digest = page.get_by_role("switch", name="Morning digest")
    weekly = page.get_by_role("switch", name="Weekly summary on Mondays")
    at = page.get_by_label("Digest time")
    status = page.locator("#summary-status")
    expect(digest).not_to_be_checked()
    expect(weekly).not_to_be_checked()
    expect(at).to_be_hidden()

    digest.click()
    expect(status).to_have_text("Morning digest at 08:00: saved.")
    expect(at).to_have_value("08:00")
    assert rep.me()["digest_time"] == "08:00"
    at.fill("07:15")
    expect(status).to_have_text("Morning digest at 07:15: saved.")
    assert rep.me()["digest_time"] == "07:15"

    # Offline: kept on the phone, and it says so; sent once the phone is back online.
    context.set_offline(True)
    page.route("**/api/**", lambda route: route.abort())
    weekly.click()
    expect(status).to_have_text(
        "Weekly summary on: saved on this phone; it reaches the server when you are back online."
    )
    expect(page.locator("#sync-status")).to_have_text("1 change waiting to sync")
    assert rep.me()["weekly_push"] is False
    # The form's own "Save settings", offline too, keeps them on the phone: it saves its fields
    # over the phone's current settings, not over a copy from before the switches changed.
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#sync-status")).to_have_text("2 changes waiting to sync")
    page.get_by_role("link", name="Today").click()
    page.get_by_role("link", name="Settings").click()
    expect(page.get_by_role("switch", name="Morning digest")).to_be_checked()
    expect(page.get_by_role("switch", name="Weekly summary on Mondays")).to_be_checked()
    page.unroute("**/api/**")
    context.set_offline(False)
    expect(page.locator("#sync-status")).to_have_text("All saved", timeout=20_000)
    assert rep.me()["weekly_push"] is True

    page.reload()
    page.get_by_role("link", name="Settings").click()
    expect(page.get_by_role("switch", name="Morning digest")).to_be_checked()
    expect(page.get_by_label("Digest time")).to_have_value("07:15")
    expect(page.get_by_role("switch", name="Weekly summary on Mondays")).to_be_checked()
    assert (rep.me()["digest_time"], rep.me()["weekly_push"]) == ("07:15", True)

    page.get_by_role("switch", name="Morning digest").click()
    expect(page.locator("#summary-status")).to_have_text("Morning digest off: saved.")
    expect(page.get_by_label("Digest time")).to_be_hidden()
    assert rep.me()["digest_time"] is None
