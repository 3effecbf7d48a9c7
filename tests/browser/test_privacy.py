"""Settings → Your data → "All of it" on the phone (issue 7): download everything as JSON, log
out everywhere, delete the account.

At 390 x 844 like every browser test. Screenshots go to the test's temporary folder, or to
``TOUCHBASE_SCREENSHOTS`` when set (as in test_app.py).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import sqlalchemy as sa
from playwright.sync_api import expect

from tests.browser.conftest import log_in

SHOTS_ENV = "TOUCHBASE_SCREENSHOTS"
# What the phone keeps in IndexedDB, store by store (static/js/store.js).
LOCAL_COUNTS = """async () => {
  const db = await new Promise((ok, no) => {
    const r = indexedDB.open("touchbase");
    r.onsuccess = () => ok(r.result);
    r.onerror = () => no(r.error);
  });
  const counts = {};
  for (const name of db.objectStoreNames) {
    counts[name] = await new Promise((ok) => {
      const r = db.transaction(name).objectStore(name).count();
      r.onsuccess = () => ok(r.result);
    });
  }
  db.close();
  return counts;
}"""


def open_all_of_it(page, rep) -> None:
    log_in(page, rep)
    page.get_by_role("link", name="Settings").click()
    expect(page.get_by_role("heading", name="All of it")).to_be_visible()


def _rows_left(live_server, user_id: str) -> dict[str, int]:
    """The rep's rows in every table of the server's database that has them."""
    engine = live_server.app.extensions["sqlalchemy"].engine
    inspector = sa.inspect(engine)
    found = {}
    with engine.connect() as conn:
        for table in inspector.get_table_names():
            columns = {c["name"] for c in inspector.get_columns(table)}
            column = "id" if table == "users" else "user_id" if "user_id" in columns else None
            if column:
                found[table] = conn.execute(
                    sa.text(f"SELECT count(*) FROM {table} WHERE {column} = :u"), {"u": user_id}
                ).scalar_one()
    return found


def _tall_enough(locator) -> None:
    box = locator.bounding_box()
    assert box is not None and box["height"] >= 44, box


def test_deleting_the_account_ends_on_the_login_screen_with_nothing_left(
    page, context, live_server, rep, tmp_path
):
    shots = Path(os.environ.get(SHOTS_ENV) or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    dana = rep.add_client("Dana Doe", phone="+13125550100")
    rep.log_touch(dana["id"], "left_message", callback_at="2031-01-05T15:00:00+00:00")
    open_all_of_it(page, rep)
    expect(page.locator("#net-hint")).to_be_hidden()

    # A settings change that cannot reach the server stays in the outbox: deleting loses it.
    page.route(
        "**/api/v1/me",
        lambda route: route.abort() if route.request.method == "PATCH" else route.continue_(),
    )
    page.get_by_label("Daily goal (calls)").fill("12")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#sync-status")).to_contain_text("1 change")

    # Offline: the form opens, but deleting (and logging out everywhere) needs the server.
    context.set_offline(True)
    page.get_by_text("Delete account…").click()
    delete = page.get_by_role("button", name="Delete my account")
    expect(delete).to_be_disabled()
    expect(page.get_by_role("button", name="Log out everywhere")).to_be_disabled()
    expect(page.locator("#net-hint")).to_have_text("Needs a connection.")
    expect(page.locator("#delete-account .notice")).to_have_text(
        "1 unsynced change(s) on this phone will be lost too."
    )
    context.set_offline(False)
    expect(delete).to_be_enabled()
    expect(page.locator("#net-hint")).to_be_hidden()
    for control in (
        page.get_by_role("link", name="Download all my data (JSON)"),
        page.get_by_role("button", name="Log out everywhere"),
        page.get_by_text("Delete account…"),
        page.get_by_label("Your password"),
        delete,
    ):
        _tall_enough(control)

    # A wrong password deletes nothing and says so.
    page.get_by_label("Your password").fill("not my password")
    delete.click()
    expect(page.locator("#delete-account [role=alert]")).to_have_text(
        "That is not your password: nothing was deleted."
    )
    assert _rows_left(live_server, rep.user["id"])["clients"] == 1
    page.get_by_label("Your password").fill(rep.password)
    page.locator("#delete-account").scroll_into_view_if_needed()
    page.screenshot(path=shots / "delete-account.png")
    delete.click()

    expect(page.locator(".notice")).to_have_text("Your account was deleted.")
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    page.screenshot(path=shots / "account-deleted.png")
    left = _rows_left(live_server, rep.user["id"])
    assert set(left) >= {"users", "clients", "touches", "callbacks", "sessions"}
    assert set(left.values()) == {0}, left
    assert page.evaluate(LOCAL_COUNTS) == {
        "kv": 0,
        "clients": 0,
        "callbacks": 0,
        "touches": 0,
        "outbox": 0,
    }
    assert rep.api.get("/me").status == 401
    # A reload stays logged out, on the login screen.
    page.unroute("**/api/v1/me")
    page.reload()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()


def test_download_all_my_data_gives_the_json(page, live_server, rep, tmp_path):
    dana = rep.add_client("Zoë Lefèvre", phone="312 555 0100", tags=["A"])
    rep.log_touch(dana["id"], "reached", note="Wants spring prices")
    open_all_of_it(page, rep)
    shots = Path(os.environ.get(SHOTS_ENV) or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    page.get_by_role("heading", name="All of it").scroll_into_view_if_needed()
    page.screenshot(path=shots / "all-of-it.png")
    with page.expect_download() as info:
        page.get_by_role("link", name="Download all my data (JSON)").click()
    download = info.value
    assert download.suggested_filename == "touchbase-account.json"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    doc = json.loads(saved.read_text(encoding="utf-8"))
    assert (doc["format"], doc["version"]) == ("touchbase-account", 1)
    assert doc["account"]["email"] == rep.email
    assert [c["name"] for c in doc["clients"]] == ["Zoë Lefèvre"]
    assert [t["note"] for t in doc["touches"]] == ["Wants spring prices"]


def test_log_out_everywhere_logs_out_this_phone_and_every_other_session(page, live_server, rep):
    open_all_of_it(page, rep)
    assert rep.api.get("/me").status == 200  # another session of the rep's (the test's client)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Log out everywhere").click()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    assert rep.api.get("/me").status == 401
    assert page.evaluate(LOCAL_COUNTS)["clients"] == 0


def test_log_out_ends_this_phones_session_only(page, live_server, rep):
    open_all_of_it(page, rep)
    assert rep.api.get("/me").status == 200
    page.get_by_role("button", name="Log out", exact=True).click()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    assert rep.api.get("/me").status == 200  # the rep's other session goes on
