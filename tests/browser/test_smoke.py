"""Smoke test of the browser test set-up: Chromium, the live server, the shell and the API."""

from __future__ import annotations


def test_shell_loads_and_the_api_answers(page, live_server, rep):
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    resp = page.goto("/")
    assert resp is not None
    assert resp.status == 200
    assert "Touchbase" in page.title()

    # The page's origin talks to the API (same origin, so the session cookie would be sent).
    csrf = page.request.get("/api/v1/csrf")
    assert csrf.status == 200
    assert csrf.json()["csrf_token"]

    # The app registers its service worker on this http://127.0.0.1 origin (a secure context).
    script = page.evaluate(
        """() => Promise.race([
            navigator.serviceWorker.ready.then((reg) => reg.active.scriptURL),
            new Promise((resolve) => setTimeout(() => resolve(null), 15000)),
        ])"""
    )
    assert script == f"{live_server.url}/sw.js"

    # The Python side sees the same server: the rep is logged in and can seed data.
    assert rep.me()["email"] == rep.email
    client = rep.add_client("Smoke Client", phone="+13125550100")
    assert [c["id"] for c in rep.clients()] == [client["id"]]
    assert errors == []


def test_sign_in_shares_the_session_with_the_browser(context, live_server, rep):
    page = context.new_page()
    assert page.request.get("/api/v1/me").status == 401
    rep.sign_in(context)
    me = page.request.get("/api/v1/me")
    assert me.status == 200
    assert me.json()["email"] == rep.email
