"""The real subscribe path, with only the browser's push service stood in for.

Headless Chromium has no push service (no FCM), so ``pushManager.subscribe`` cannot succeed for
real here. An init script replaces ``PushManager.prototype.subscribe/getSubscription`` (and
``PushSubscription.prototype.unsubscribe``) in the page with a stand-in whose subscription is on
the local fake push service (tests/push/fake_service.py), with a P-256 key pair and auth secret
this test made. Everything else is the app's own: the permission check, the tap on the switch,
``reminders.js`` asking for the server's key, the POST to the server, the re-post at start, the
unsubscribe and DELETE at log out. The dispatcher then pushes to that endpoint, and the fake
service decrypts the push with the test's private key: the keys the browser posted are the keys
the server encrypts to.

What is not exercised: Chromium's own subscribe (its push service is out of reach), and a
``pushsubscriptionchange`` fired by the browser (Chromium does not fire it). That handler is
driven with a script-made event in the worker, with the worker's PushManager stood in for too.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from tests.browser.conftest import wait_until
from tests.browser.test_push import log_in, worker
from tests.push.fake_service import FakePushService, Subscriber
from tests.push.test_summaries import zone_at_midday
from webapp.dispatch import Dispatcher, weekly_payload
from webapp.models import push_subscriptions

# The page's stand-in for the push service registration. ``localStorage`` keeps the subscription
# across reloads, as the browser would; ``fake-push-log`` records what the app called.
PAGE_STUB = """
((sub) => {
  const STORE = "fake-push-subscription";
  const LOG = "fake-push-log";
  const log = (what) => {
    const all = JSON.parse(localStorage.getItem(LOG) || "[]");
    all.push(what);
    localStorage.setItem(LOG, JSON.stringify(all));
  };
  const bytes = (b64) => {
    const std = b64.replace(/-/g, "+").replace(/_/g, "/");
    const s = atob(std + "==".slice(0, (4 - (std.length % 4)) % 4));
    return Uint8Array.from(s, (c) => c.charCodeAt(0));
  };
  class FakeSubscription {
    constructor(key) {
      this.endpoint = sub.endpoint;
      this.expirationTime = null;
      this.options = { userVisibleOnly: true, applicationServerKey: new Uint8Array(key).buffer };
    }
    getKey(name) { return bytes(sub.keys[name]).buffer; }
    toJSON() { return { endpoint: sub.endpoint, expirationTime: null, keys: { ...sub.keys } }; }
    async unsubscribe() {
      localStorage.removeItem(STORE);
      log("unsubscribe");
      return true;
    }
  }
  PushManager.prototype.subscribe = async function (options) {
    if (Notification.permission !== "granted") {
      throw new DOMException("Registration failed - permission denied", "NotAllowedError");
    }
    if (!options || options.userVisibleOnly !== true) {
      throw new DOMException("userVisibleOnly is required", "NotAllowedError");
    }
    const key = Array.from(new Uint8Array(options.applicationServerKey));
    localStorage.setItem(STORE, JSON.stringify(key));
    log("subscribe");
    return new FakeSubscription(key);
  };
  PushManager.prototype.getSubscription = async function () {
    const key = localStorage.getItem(STORE);
    return key ? new FakeSubscription(JSON.parse(key)) : null;
  };
  PushSubscription.prototype.unsubscribe = async function () {
    log("unsubscribe of a real subscription");
    return true;
  };
})
"""


def install_stub(context: Any, sub: Subscriber) -> None:
    context.add_init_script(script=f"{PAGE_STUB}({json.dumps(sub.subscription())});")


def stub_log(page: Any) -> list[str]:
    return page.evaluate("JSON.parse(localStorage.getItem('fake-push-log') || '[]')")


@pytest.fixture
def push_service(live_server: Any) -> Iterator[FakePushService]:
    """The fake push service, and the live server allowed to push to it (and only there)."""
    with FakePushService(None) as service:
        live_server.reload(PUSH_ORIGINS=service.origin)
        service.vapid_public_key = live_server.app.extensions["touchbase_push"]["public_key"]
        yield service
    assert service.errors == [], service.errors


def stored(live_server: Any) -> list[Any]:
    """The subscriptions the server holds."""
    with live_server.app.extensions["sqlalchemy"].engine.connect() as conn:
        return conn.execute(sa.select(push_subscriptions)).all()


def eventually(page: Any, read: Any, wanted: Any, timeout: float = 10.0) -> Any:
    """Read the server's state until it is ``wanted`` (or ``timeout`` s pass); return the last."""
    value = read()
    for _ in range(int(timeout / 0.05)):
        if value == wanted:
            break
        page.wait_for_timeout(50)
        value = read()
    return value


def dispatch_once(live_server: Any) -> Any:
    dispatcher = Dispatcher(live_server.app, concurrency=1)
    try:
        return dispatcher.run_once()
    finally:
        dispatcher.close()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def turn_on(page: Any) -> Any:
    page.get_by_role("link", name="Settings").click()
    switch = page.get_by_role("switch", name="Reminders")
    expect(switch).not_to_be_checked()
    expect(switch).to_be_enabled()
    switch.click()  # a real click: the user gesture the permission prompt needs
    return switch


def test_subscribe_push_resubscribe_and_unsubscribe_through_the_app(
    page, context, live_server, rep, push_service, sw_cdp
):
    sub = push_service.subscriber()
    install_stub(context, sub)
    context.grant_permissions(["notifications"], origin=live_server.url)
    rep.update_me(quiet_hours=None)
    log_in(page, rep)

    # The switch: subscribes with the server's key and posts the subscription.
    switch = turn_on(page)
    expect(page.locator("#push-message")).to_have_text("Reminders are on for this phone.")
    expect(switch).to_be_checked()
    expect(page.locator("#push-state")).to_have_text(
        "On: this phone shows a reminder when a promised callback comes due."
    )
    assert stub_log(page) == ["subscribe"]
    key = page.evaluate("JSON.parse(localStorage.getItem('fake-push-subscription'))")
    assert bytes(key) == unb64url(rep.api.get("/push/key").json["public_key"])
    [row] = stored(live_server)
    assert (row.user_id, row.endpoint) == (rep.user["id"], sub.endpoint)
    assert (row.p256dh, row.auth) == (sub.keys["p256dh"], sub.keys["auth"])

    # A due promise: the dispatcher pushes it to that endpoint, encrypted to the test's keys.
    dana = rep.add_client("Dana Doe", phone="+13125550100")
    cb = rep.add_callback(dana["id"], datetime.now(UTC) - timedelta(seconds=1))
    assert dispatch_once(live_server).notified == 1
    [push] = push_service.received(sub)
    assert push.status == 201
    assert push.payload["title"] == "Call Dana Doe"
    assert push.payload["callback_id"] == cb["id"]
    assert push.payload["url"] == f"/#/clients/{dana['id']}"
    # What the push service would hand the browser, shown by the app's worker.
    cdp = sw_cdp(page)
    cdp.deliver_push(push.payload)
    wait_until(
        page, "async () => (await (await navigator.serviceWorker.ready).getNotifications()).length"
    )
    [note] = cdp.notifications()
    assert (note["title"], note["tag"]) == ("Call Dana Doe", f"callback-{cb['id']}")

    # At start the app tells the server again (here the server had lost it).
    with live_server.app.extensions["sqlalchemy"].engine.begin() as conn:
        conn.execute(sa.delete(push_subscriptions))
    with page.expect_request(
        lambda r: r.url.endswith("/api/v1/push/subscriptions") and r.method == "POST"
    ) as posted:
        page.reload()
    assert posted.value.post_data_json["endpoint"] == sub.endpoint
    endpoints = eventually(page, lambda: [r.endpoint for r in stored(live_server)], [sub.endpoint])
    assert endpoints == [sub.endpoint]
    assert stub_log(page) == ["subscribe"]  # re-posted, not subscribed again

    # Log out: the browser unsubscribes and the server forgets the endpoint.
    page.get_by_role("link", name="Settings").click()
    with page.expect_request(
        lambda r: r.url.endswith("/api/v1/push/subscriptions") and r.method == "DELETE"
    ):
        page.get_by_role("button", name="Log out", exact=True).click()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    assert stub_log(page) == ["subscribe", "unsubscribe"]
    assert page.evaluate("localStorage.getItem('fake-push-subscription')") is None
    assert stored(live_server) == []


def test_a_refused_permission_subscribes_nothing(page, context, live_server, rep, push_service):
    sub = push_service.subscriber()
    install_stub(context, sub)
    log_in(page, rep)
    assert page.evaluate("Notification.permission") == "default"
    # The tap asks; headless Chromium refuses the prompt by itself, as a rep tapping "Block".
    turn_on(page)
    expect(page.locator("#push-state")).to_have_text(
        "Blocked in browser settings — here is how to allow:"
    )
    assert page.evaluate("Notification.permission") == "denied"
    expect(page.locator(".push-help")).to_contain_text("set Notifications to Allow")
    expect(page.get_by_role("switch", name="Reminders")).not_to_be_checked()
    expect(page.get_by_role("switch", name="Reminders")).to_be_disabled()
    assert stub_log(page) == []  # never subscribed
    assert stored(live_server) == []
    # And so it stays on the next visit, and after a reload.
    page.reload()
    page.get_by_role("link", name="Settings").click()
    expect(page.locator("#push-state")).to_have_text(
        "Blocked in browser settings — here is how to allow:"
    )
    expect(page.get_by_role("switch", name="Reminders")).to_be_disabled()
    assert stub_log(page) == [] and stored(live_server) == []


# The worker's stand-in: the push service dropped the old subscription and gives a new one.
WORKER_STUB = """
(sub) => {
  self.fakePushLog = [];
  const make = () => ({
    endpoint: sub.endpoint,
    expirationTime: null,
    options: null,
    toJSON: () => ({ endpoint: sub.endpoint, expirationTime: null, keys: { ...sub.keys } }),
    unsubscribe: async () => true,
  });
  PushManager.prototype.getSubscription = async function () { return null; };
  PushManager.prototype.subscribe = async function (options) {
    const visible = options && options.userVisibleOnly;
    self.fakePushLog.push(visible ? "subscribe" : "subscribe without userVisibleOnly");
    return make();
  };
  return true;
}
"""

# A script-made pushsubscriptionchange: Chromium never fires one. Its waitUntil throws
# (the event is not trusted), after the listener has started the re-subscription.
FIRE_CHANGE = """
(old) => {
  const event = new ExtendableEvent("pushsubscriptionchange");
  Object.defineProperty(event, "oldSubscription", { value: { endpoint: old } });
  Object.defineProperty(event, "newSubscription", { value: null });
  self.dispatchEvent(event);
  return true;
}
"""


def test_pushsubscriptionchange_posts_the_new_subscription(
    page, context, live_server, rep, push_service
):
    old, new = push_service.subscriber(), push_service.subscriber()
    install_stub(context, old)
    context.grant_permissions(["notifications"], origin=live_server.url)
    rep.update_me(quiet_hours=None)
    log_in(page, rep)
    turn_on(page)
    expect(page.locator("#push-message")).to_have_text("Reminders are on for this phone.")
    assert [r.endpoint for r in stored(live_server)] == [old.endpoint]

    sw = worker(page)
    sw.evaluate(WORKER_STUB, new.subscription())
    sw.evaluate(FIRE_CHANGE, old.endpoint)
    # The new one posted, the old one deleted.
    endpoints = eventually(page, lambda: [r.endpoint for r in stored(live_server)], [new.endpoint])
    assert endpoints == [new.endpoint]
    assert sw.evaluate("self.fakePushLog") == ["subscribe"]

    # Reminders now reach the new endpoint, encrypted to its keys.
    dana = rep.add_client("Dana Doe")
    rep.add_callback(dana["id"], datetime.now(UTC) - timedelta(seconds=1))
    assert dispatch_once(live_server).notified == 1
    assert [p.payload["title"] for p in push_service.received(new)] == ["Call Dana Doe"]
    assert push_service.received(old) == []


def test_the_morning_digest_shows_and_a_tap_opens_today(
    page, context, live_server, push_service, sw_cdp
):
    """The digest as the dispatcher makes it, through the fake push service, into the worker."""
    zone = zone_at_midday()
    rep = live_server.register_rep(timezone=zone)
    now = datetime.now(ZoneInfo(zone))
    rep.update_me(digest_time=f"{now - timedelta(minutes=1):%H:%M}")
    sub = push_service.subscriber()
    assert rep.api.post("/push/subscriptions", sub.subscription()).status == 201
    dana = rep.add_client("Dana Doe")
    rep.add_callback(dana["id"], datetime.now(UTC) + timedelta(minutes=30))
    rep.add_client("Eli Neverrung")
    context.grant_permissions(["notifications"], origin=live_server.url)
    log_in(page, rep)

    assert dispatch_once(live_server).digests == 1
    [push] = push_service.received(sub)
    assert push.payload["title"] == "2 calls today, 1 promised"
    cdp = sw_cdp(page)
    cdp.deliver_push(push.payload)
    count = "async () => (await (await navigator.serviceWorker.ready).getNotifications()).length"
    wait_until(page, count)
    [note] = cdp.notifications()
    assert note["title"] == "2 calls today, 1 promised"
    assert note["body"] == "Dana Doe, Eli Neverrung."
    assert note["tag"] == "touchbase-digest"
    assert note["data"] == {"url": "/#/today", "callback_id": None, "client_id": None}
    assert note["actions"] == []  # nothing to mark as called: a tap opens the list

    # Tomorrow's digest replaces today's in the tray (same tag).
    cdp.deliver_push({**push.payload, "title": "Nothing due today", "body": "Clear."})
    page.wait_for_timeout(300)
    assert [n["title"] for n in cdp.notifications()] == ["Nothing due today"]
    note = cdp.notifications()[0]

    # Monday's weekly summary sits beside it (its own tag) and leads to the figures.
    figures = {"calls": 42, "reached": 20, "reach_rate": 0.476, "promises_due": 9}
    figures |= {"promises_kept": 8, "coverage": {"A": 0.775, "B": None, "C": None}}
    cdp.deliver_push(weekly_payload(figures))
    wait_until(page, f"async () => (await ({count})()) === 2")
    [summary] = [n for n in cdp.notifications() if n["tag"] == "touchbase-weekly"]
    assert summary["title"] == "Last week: 42 calls, 20 reached"
    assert summary["data"]["url"] == "/#/stats" and summary["actions"] == []

    # A tap, with the app open on another screen, brings it to today's list.
    page.get_by_role("link", name="Settings").click()
    expect(page.locator("#screen-title")).to_have_text("Settings")
    done = worker(page).evaluate("(data) => self.touchbase.onClick('', data)", note["data"])
    assert done == {"kind": "open", "url": f"{live_server.url}/#/today", "window": "existing"}
    expect(page.locator("#screen-title")).to_have_text("Today")
    expect(page.get_by_text("Dana Doe")).to_be_visible()
