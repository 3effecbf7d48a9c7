"""Faults between the phone and the server: every change still arrives, and arrives once.

- The server goes away in the middle of replaying the outbox, at the worst moment: it has
  committed a call but the answer never reaches the phone. While it is down every request is
  refused; then it comes back as a new process (a new app on the same port and database) and
  the phone's next sync delivers the rest. The call the server already had is answered 200 (a
  replay), so each call is stored exactly once.
- The database is unreachable: the server itself answers 503 in the error shape, the phone keeps
  the call in its outbox (waiting, not failed) and sends it once the database is back.

The CSP is watched throughout: a violation would mean part of the app silently did not run.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import sqlalchemy as sa
from playwright.sync_api import expect
from werkzeug.serving import make_server

from tests.browser.conftest import LiveServer, _QuietHandler, log_in, wait_until

WATCH_CSP = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`);
});
"""


def stop_server(server: LiveServer) -> None:
    """The server process dies: its socket closes and its app (and connections) go with it."""
    server._server.shutdown()
    server._server.server_close()
    server._thread.join(timeout=10)
    server.app.extensions["sqlalchemy"].engine.dispose()


def start_server(server: LiveServer) -> None:
    """A new server process on the same port, database and instance folder."""
    server.app = server._make_app()
    server._server = make_server(
        "127.0.0.1", server.port, server._wsgi, threaded=True, request_handler=_QuietHandler
    )
    server._thread = threading.Thread(target=server._server.serve_forever, daemon=True)
    server._thread.start()


def stored_touches(server: LiveServer) -> list[tuple[str, str]]:
    """(touch id, client id) of every stored touch, read from the database file itself."""
    engine = sa.create_engine(server.database_url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text("SELECT id, client_id FROM touches"))]
    finally:
        engine.dispose()


def log_calls(page: Any, names: list[str], outcome: str = "No answer") -> None:
    for name in names:
        page.locator(".today-list .row", has_text=name).locator(".row-main").click()
        page.get_by_role("button", name="Log a call").click()
        page.get_by_role("button", name=outcome).click()
        page.get_by_role("button", name="Done").click()
        page.get_by_role("link", name="Today").click()


def test_a_server_restarted_mid_sync_gets_every_pending_change_once(
    page, context, live_server, rep
):
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.add_init_script(WATCH_CSP)
    names = [f"Client {n}" for n in "ABCDE"]
    clients = {rep.add_client(name, phone=f"+1312555010{i}")["id"] for i, name in enumerate(names)}
    log_in(page, rep)
    wait_until(page, "() => navigator.serviceWorker.controller !== null")
    expect(page.locator(".today-list .row")).to_have_count(5)

    # Five calls made with no signal: all five wait in the outbox.
    context.set_offline(True)
    page.route("**/api/**", lambda route: route.abort())
    log_calls(page, names)
    expect(page.locator("#sync-status")).to_have_text("5 changes waiting to sync")
    page.unroute("**/api/**")

    # Back online. The third call reaches the server and is stored, but the server dies before
    # answering; from then on every request is refused, as by a machine with nothing listening.
    state = {"posts": 0, "down": False, "answers": []}

    def server(route: Any) -> None:
        request = route.request
        if state["down"]:
            route.abort("connectionrefused")
            return
        if request.method == "POST" and request.url.endswith("/api/v1/touches"):
            state["posts"] += 1
            if state["posts"] == 3:
                stored = route.fetch()  # the server commits the touch...
                assert stored.status == 201, stored.text()
                state["down"] = True
                route.abort("connectionreset")  # ...and the answer is lost with the server
                return
        route.continue_()

    page.route("**/api/**", server)
    page.on(
        "response",
        lambda r: (
            state["answers"].append((r.request.post_data_json, r.status))
            if r.request.method == "POST" and r.url.endswith("/api/v1/touches")
            else None
        ),
    )
    context.set_offline(False)
    _wait_for(page, lambda: state["down"], "the third call to reach the server")
    expect(page.locator("#sync-status")).to_have_text("3 changes waiting to sync")
    stop_server(live_server)
    # Two answered, and the third stored without the phone knowing: it is still waiting there.
    assert len(stored_touches(live_server)) == 3

    # The phone tries again while the server is away: nothing changes, nothing is lost.
    page.evaluate("window.dispatchEvent(new Event('online'))")
    page.reload()
    expect(page.locator("#sync-status")).to_have_text("3 changes waiting to sync")

    # A new server process comes up on the same port; the next sync delivers the rest.
    start_server(live_server)
    state["down"] = False
    page.evaluate("window.dispatchEvent(new Event('online'))")
    expect(page.locator("#sync-status")).to_have_text("All saved", timeout=30_000)

    stored = stored_touches(live_server)
    assert len(stored) == 5 and {c for _, c in stored} == clients
    assert Counter(c for _, c in stored) == Counter({c: 1 for c in clients})
    # The call the server already had came back as a replay: 200, not a second row.
    replays = [body["id"] for body, status in state["answers"] if status == 200]
    assert len(replays) == 1 and replays[0] in {t for t, _ in stored}
    assert len(rep.touches()) == 5
    # Another round, and a reload, send nothing twice.
    page.reload()
    expect(page.locator("#sync-status")).to_have_text("All saved")
    page.evaluate("window.dispatchEvent(new Event('online'))")
    expect(page.locator(".progress")).to_contain_text("5 of 10 calls")
    assert len(stored_touches(live_server)) == 5
    assert page.evaluate("window.__csp") == []
    assert errors == []


def test_a_database_outage_answers_503_and_the_phone_keeps_its_outbox(page, live_server, rep):
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.add_init_script(WATCH_CSP)
    dana = rep.add_client("Dana Doe", phone="+13125550100")
    log_in(page, rep)
    expect(page.locator(".today-list .row")).to_have_count(1)

    # The same server, its database gone: nothing listens where the app looks for it.
    working = live_server.config["DATABASE_URL"]
    live_server.reload(DATABASE_URL="postgresql+psycopg://touchbase@127.0.0.1:9/nowhere")
    answers: list[tuple[int, Any]] = []
    page.on(
        "response",
        lambda r: (
            answers.append((r.status, r.json()))
            if r.request.method == "POST" and r.url.endswith("/api/v1/touches")
            else None
        ),
    )
    log_calls(page, ["Dana Doe"], "Reached")
    # After the Undo window the phone sends it: the server answers 503, and the call waits.
    expect(page.locator("#sync-status")).to_have_text("1 change waiting to sync")
    _wait_for(page, lambda: answers, "the phone's first try")
    status, body = answers[0]
    assert status == 503
    assert body["error"]["code"] == "unavailable" and body["error"]["message"]
    expect(page.locator("#sync-status")).to_have_text("1 change waiting to sync")
    expect(page.locator("#sync-status")).to_have_attribute("data-state", "waiting")
    assert stored_touches(live_server) == []

    # The database is back; the phone's next sync delivers the call, once.
    live_server.reload(DATABASE_URL=working)
    page.evaluate("window.dispatchEvent(new Event('online'))")
    expect(page.locator("#sync-status")).to_have_text("All saved", timeout=30_000)
    assert [t["outcome"] for t in rep.touches(dana["id"])] == ["reached"]
    _wait_for(page, lambda: answers[-1][0] == 201, "the answer to reach the test")
    assert [s for s, _ in answers] == [503] * (len(answers) - 1) + [201]
    assert page.evaluate("window.__csp") == []
    assert errors == []


def _wait_for(page: Any, test: Any, what: str, timeout_ms: int = 30_000) -> None:
    waited = 0
    while not test():
        assert waited < timeout_ms, f"waited {timeout_ms} ms for {what}"
        page.wait_for_timeout(50)
        waited += 50
