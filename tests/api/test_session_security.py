"""Sessions and what the browser is told to trust: the parts of issue 7 the other suites leave.

Covered elsewhere, and not repeated here: the cookie's flags over HTTP, HTTPS and behind a
configured proxy, and the CSP header on every kind of answer (``test_bad_input.py``); the login
rate limits (``test_auth.py``, and across processes ``test_ratelimit_redis.py``); the cross-rep
matrix with exports and the calendar feed (``test_isolation.py``); push allow-list and per-rep
delivery (``tests/push``). Here:

- Login rotates the session: the pre-login cookie stays anonymous, and a CSRF token from before
  login (one an attacker could have planted with a fixated cookie) is refused afterwards.
- Logout deletes the cookie in the browser and makes the session's token useless.
- Without ``TOUCHBASE_PROXY_FIX``, forwarded headers are not believed: a forged
  ``X-Forwarded-For`` cannot dodge the per-address login limit, and a forged
  ``X-Forwarded-Proto`` does not make the app think it is on HTTPS.
- The shell as served needs nothing the CSP forbids: no inline script, no event-handler or
  style attributes, and no script that builds code or markup from strings.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from tests.conftest import PASSWORD, register_rep

API = "/api/v1"
ROOT = Path(__file__).resolve().parents[2]
COOKIE = "touchbase_session"


def _login(client, token: str, email: str = "rep@example.com", **kwargs):
    return client.post(
        f"{API}/auth/login",
        json={"email": email, "password": PASSWORD},
        headers={"X-CSRFToken": token, **kwargs.pop("headers", {})},
        **kwargs,
    )


def test_login_rotates_the_session_and_old_tokens_are_refused(app):
    register_rep(app)
    client = app.test_client()
    old_token = client.get(f"{API}/csrf").json["csrf_token"]
    old_cookie = client.get_cookie(COOKIE).value

    login = _login(client, old_token)
    assert login.status_code == 200
    new_token = login.json["csrf_token"]
    assert client.get_cookie(COOKIE).value != old_cookie and new_token != old_token

    # The pre-login token does not work with the logged-in session...
    refused = client.post(f"{API}/clients", json={"name": "X"}, headers={"X-CSRFToken": old_token})
    assert refused.status_code == 400 and refused.json["error"]["code"] == "csrf_failed"
    assert (
        client.post(
            f"{API}/clients", json={"name": "X"}, headers={"X-CSRFToken": new_token}
        ).status_code
        == 201
    )
    # ...and whoever kept the pre-login cookie (a fixated session) is still nobody.
    attacker = app.test_client()
    attacker.set_cookie(COOKIE, old_cookie)
    assert attacker.get(f"{API}/me").status_code == 401
    written = attacker.post(
        f"{API}/clients", json={"name": "Y"}, headers={"X-CSRFToken": old_token}
    )
    assert written.status_code == 401
    assert [c["name"] for c in client.get(f"{API}/clients").json["items"]] == ["X"]


def test_logout_deletes_the_cookie_and_its_token(app):
    rep = register_rep(app)
    cookie = rep.client.get_cookie(COOKIE).value
    out = rep.post("/auth/logout")
    assert out.status_code == 204
    header = out.headers["Set-Cookie"]
    assert header.startswith(f"{COOKIE}=;") and ("Max-Age=0" in header or "1970" in header)
    assert rep.client.get_cookie(COOKIE) is None
    assert rep.get("/me").status_code == 401
    # The logged-out session's token is worth nothing in the next session.
    rep.client.get(f"{API}/csrf")
    stale = rep.post("/clients", {"name": "X"})
    assert stale.status_code == 400 and stale.json["error"]["code"] == "csrf_failed"
    # Logging in again makes a new session, not the old one back.
    token = rep.client.get(f"{API}/csrf").json["csrf_token"]
    assert _login(rep.client, token).status_code == 200
    assert rep.client.get_cookie(COOKIE).value != cookie


def test_forwarded_headers_are_not_believed_without_proxy_fix(app):
    assert app.config["PROXY_FIX"] == 0
    client = app.test_client()
    token = client.get(f"{API}/csrf").json["csrf_token"]
    for i in range(10):
        forged = {"X-Forwarded-For": f"198.51.100.{i}", "X-Forwarded-Proto": "https"}
        body = {"email": f"guess{i}@example.com", "password": "wrong password"}
        resp = client.post(f"{API}/auth/login", json=body, headers={"X-CSRFToken": token, **forged})
        assert resp.status_code == 401, resp.json
        # Not on HTTPS for all the header says: the app did not switch to its HTTPS rules.
        assert "Secure" not in resp.headers.get("Set-Cookie", "")
    limited = client.post(
        f"{API}/auth/login",
        json={"email": "fresh@example.com", "password": "wrong password"},
        headers={"X-CSRFToken": token, "X-Forwarded-For": "192.0.2.200"},
    )
    assert limited.status_code == 429, limited.json


class _Shell(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self.scripts: list[dict[str, str | None]] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}=...>: an inline event handler")
            if name == "style":
                self.problems.append(f"<{tag} style=...>: an inline style")
            if value and value.strip().lower().startswith("javascript:"):
                self.problems.append(f"<{tag} {name}={value!r}>: a javascript: URL")
        if tag == "script":
            self.scripts.append(dict(attrs))
            self._in_script = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.problems.append(f"inline script: {data.strip()[:80]!r}")


def test_the_shell_needs_nothing_the_csp_forbids(app):
    served = app.test_client().get("/")
    assert served.status_code == 200
    csp = served.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe" not in csp
    shell = _Shell()
    shell.feed(served.get_data(as_text=True))
    assert shell.problems == []
    assert shell.scripts and all(s.get("src", "").startswith("/static/") for s in shell.scripts)
    # No module turns strings into code or markup: under this CSP code from strings is
    # refused, and markup from strings is how an inline handler would sneak back in.
    forbidden = re.compile(
        r"\beval\s*\(|new\s+Function\s*\(|\.innerHTML\s*=|\.outerHTML\s*=|"
        r"insertAdjacentHTML|document\.write|setTimeout\s*\(\s*['\"`]"
    )
    modules = [*sorted((ROOT / "static" / "js").rglob("*.js")), ROOT / "service_worker" / "sw.js"]
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in modules
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if forbidden.search(line) and not line.lstrip().startswith("//")
    ]
    assert found == []
