"""Browser tests: pytest-playwright driving Debian's Chromium against a real local server.

Chromium is ``/usr/bin/chromium`` (``python3 manage.py test`` installs it with apt when it is
missing and the user is root). A missing Chromium fails these tests; it never skips them. The
database is SQLite only: these tests are about the phone app, and the API suite covers PostgreSQL.

Fixtures
--------
``live_server`` (per test)
    A real HTTP server on ``http://127.0.0.1:<free port>`` serving ``webapp.create_app()`` on a
    fresh, migrated SQLite database and instance folder, with cheap password hashing. It runs in
    a background thread (werkzeug, threaded), so each xdist worker and each test has its own.

    - ``.url``: the origin, e.g. ``http://127.0.0.1:41234`` (a secure context, so the service
      worker registers).
    - ``.app``: the Flask app, for direct looks at the database (``with .app.app_context():``).
    - ``.api()``: a new, anonymous ``ApiClient`` (HTTP over the real socket, its own cookies).
    - ``.fetch(path)``: a plain GET, answering a ``Response``.
    - ``.register_rep(email=None, timezone=...)``: a fresh rep, logged in (see ``Rep``).
    - ``.reload(**config)``: swap in a new app built with extra config on the same port and
      database, e.g. ``reload(STATIC_DIR=new_folder)`` to stage a deploy of changed static
      files (the update toast test). The origin stays the same, so the installed worker sees
      the new ``/sw.js``.

``rep`` (per test)
    ``live_server.register_rep()``: a new rep in America/Chicago with a unique email. A ``Rep``
    has ``email``, ``password``, ``name``, ``timezone``, ``user`` (the API's user object) and
    ``api`` (a logged-in ``ApiClient``), plus seeding and checking helpers:

    - ``add_client(name, **fields)`` -> client dict (``POST /clients``; any API.md field).
    - ``log_touch(client_id, outcome="no_answer", **fields)`` -> touch dict (``POST /touches``,
      a fresh uuid; ``happened_at`` / ``callback_at`` may be datetimes or ISO strings).
    - ``add_callback(client_id, due_at, happened_at=None)`` -> callback dict: the API makes
      promises only through a touch, so this logs a "left_message" touch carrying
      ``callback_at`` (it counts one attempt and sets ``last_touch_at``).
    - ``clients()``, ``client(id)``, ``touches(client_id=None)``, ``callbacks(status="open")``,
      ``today()``, ``me()``, ``update_me(**fields)``.
    - ``sign_in(context)``: log the browser context in through its own request API (shares the
      context's cookies), for tests that are not about the login screen.

``ApiClient``: ``get/post/patch/delete(path, json=None)`` -> ``Response`` with ``.status``,
``.json``, ``.headers``, ``.body``. Paths not starting with ``/api/`` get ``/api/v1`` put in
front. It fetches the CSRF token itself and sends it as ``X-CSRFToken``; no exception on 4xx/5xx.

pytest-playwright's own fixtures, set up for this app:

- ``browser_type_launch_args``: headless ``/usr/bin/chromium`` with ``CHROMIUM_ARGS``.
- ``browser_context_args`` (per test): a 390x844 phone (``is_mobile``, ``has_touch``, scale
  1), ``base_url`` = ``live_server.url`` (so ``page.goto("/")`` works), America/Chicago, en-US.
  Change it for one test with ``@pytest.mark.browser_context_args(device_scale_factor=2)``
  (screenshots); do not pass the same keys to ``new_context()``, which would raise.
- ``browser``, ``context``, ``page``, ``new_context``: as pytest-playwright provides them.

``persistent_context`` (per test)
    ``launch_persistent_context`` on a temporary user-data dir with the same Chromium, flags and
    phone settings. An ordinary context is incognito, and ``Page.getInstallabilityErrors``
    always reports ``in-incognito`` there; use this for the installability test. Its pages:
    ``persistent_context.pages[0]`` or ``persistent_context.new_page()``.

``wait_until`` (a function)
    ``wait_until(page, "() => navigator.serviceWorker.controller !== null", timeout=20)``:
    polls ``page.evaluate`` until the answer is truthy. Use it instead of
    ``page.wait_for_function``, whose polling uses ``eval`` and so is refused by the app's CSP
    (no ``unsafe-eval``) whenever the first check is false.

``sw_cdp`` (per test, a factory)
    ``sw_cdp(page)`` -> ``ServiceWorkerCDP``: a CDP session that has subscribed to
    ``ServiceWorker.workerRegistrationUpdated`` before ``ServiceWorker.enable`` (so it learns
    the registration id), with ``registration_id(scope=None)`` (waits for the worker to be
    activated), ``deliver_push(data)`` (``ServiceWorker.deliverPushMessage``; a dict is sent as
    JSON) and ``notifications()`` (what ``registration.getNotifications()`` shows). Grant the
    permission first: ``context.grant_permissions(["notifications"], origin=live_server.url)``.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Error as PlaywrightError
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from webapp import create_app

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 390, "height": 844}
TIMEZONE = "America/Chicago"
PASSWORD = "correct horse battery"
# A cheap scrypt keeps registering and logging in fast; production keeps werkzeug's default cost.
TEST_CONFIG = {"SECRET_KEY": "browser-tests", "PASSWORD_HASH_METHOD": "scrypt:1024:8:1"}


def _require_chromium() -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing, so the browser tests cannot run. Install Debian's Chromium "
            "(`apt-get install -y chromium`; `python3 manage.py test` does it as root).",
            pytrace=False,
        )


# --------------------------------------------------------------------------------------------
# Talking to the server from Python


@dataclass
class Response:
    """An HTTP answer: status, headers, raw body and the body parsed as JSON (or None)."""

    status: int
    headers: Any
    body: bytes

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("timestamps sent to the API need an offset")
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


class ApiClient:
    """A cookie-keeping HTTP client for the JSON API, over the live server's real socket."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        self.token: str | None = None

    def request(
        self, method: str, path: str, json_body: Any = None, headers: dict | None = None
    ) -> Response:
        """Send one request; ``path`` is taken as is (``/sw.js``, ``/api/v1/me``)."""
        data = None
        all_headers = {"Accept": "application/json", **(headers or {})}
        if json_body is not None:
            data = json.dumps(_jsonable(json_body)).encode()
            all_headers["Content-Type"] = "application/json"
        req = urllib.request.Request(
            self.base_url + path, data=data, headers=all_headers, method=method
        )
        try:
            with self.opener.open(req, timeout=30) as resp:
                return Response(resp.status, resp.headers, resp.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return Response(exc.code, exc.headers, exc.read())

    def call(self, method: str, path: str, json: Any = None) -> Response:
        """An API call: ``/api/v1`` is put before ``path``, and the CSRF header is sent."""
        if not path.startswith("/api/"):
            path = "/api/v1" + path
        if self.token is None and method != "GET":
            self.refresh_token()
        headers = {"X-CSRFToken": self.token} if self.token else {}
        resp = self.request(method, path, json, headers)
        body = resp.json
        if isinstance(body, dict) and isinstance(body.get("csrf_token"), str):
            self.token = body["csrf_token"]  # login and register hand out a fresh one
        return resp

    def refresh_token(self) -> str:
        resp = self.request("GET", "/api/v1/csrf")
        assert resp.status == 200, (resp.status, resp.body[:500])
        self.token = resp.json["csrf_token"]
        return self.token

    def get(self, path: str) -> Response:
        return self.call("GET", path)

    def post(self, path: str, json: Any = None) -> Response:
        return self.call("POST", path, json)

    def patch(self, path: str, json: Any = None) -> Response:
        return self.call("PATCH", path, json)

    def delete(self, path: str, json: Any = None) -> Response:
        return self.call("DELETE", path, json)


def _ok(resp: Response, *statuses: int) -> Any:
    assert resp.status in (statuses or (200,)), (resp.status, resp.body[:2000])
    return resp.json


def _all_items(api: ApiClient, path: str) -> list[dict[str, Any]]:
    """Every item of a paginated list (API.md: items + next_cursor)."""
    items: list[dict[str, Any]] = []
    sep = "&" if "?" in path else "?"
    url = f"{path}{sep}limit=500"
    while True:
        page = _ok(api.get(url))
        items += page["items"]
        if not page.get("next_cursor"):
            return items
        url = f"{path}{sep}limit=500&cursor={urllib.request.quote(page['next_cursor'])}"


@dataclass
class Rep:
    """A registered rep with a logged-in ApiClient and helpers to seed and inspect their data."""

    email: str
    password: str
    name: str
    timezone: str
    user: dict[str, Any]
    api: ApiClient
    base_url: str = field(repr=False)

    def add_client(self, name: str = "Dana Client", **fields: Any) -> dict[str, Any]:
        return _ok(self.api.post("/clients", {"name": name, **fields}), 201)

    def log_touch(self, client_id: str, outcome: str = "no_answer", **fields: Any) -> dict:
        body = {"id": str(uuid.uuid4()), "client_id": client_id, "outcome": outcome, **fields}
        return _ok(self.api.post("/touches", body), 201)

    def add_callback(
        self, client_id: str, due_at: datetime | str, happened_at: datetime | str | None = None
    ) -> dict[str, Any]:
        """Open a promise to call ``client_id`` at ``due_at`` (through a left_message touch)."""
        callback_id = str(uuid.uuid4())
        fields: dict[str, Any] = {"callback_at": due_at, "callback_id": callback_id}
        if happened_at is not None:
            fields["happened_at"] = happened_at
        self.log_touch(client_id, "left_message", **fields)
        found = [c for c in self.callbacks("open") if c["id"] == callback_id]
        assert found, f"callback {callback_id} was not opened"
        return found[0]

    def clients(self) -> list[dict[str, Any]]:
        return _all_items(self.api, "/clients")

    def client(self, client_id: str) -> dict[str, Any]:
        return _ok(self.api.get(f"/clients/{client_id}"))

    def touches(self, client_id: str | None = None) -> list[dict[str, Any]]:
        return _all_items(self.api, f"/clients/{client_id}/touches" if client_id else "/touches")

    def callbacks(self, status: str | None = "open") -> list[dict[str, Any]]:
        return _all_items(self.api, f"/callbacks?status={status}" if status else "/callbacks")

    def today(self) -> dict[str, Any]:
        return _ok(self.api.get("/today"))

    def me(self) -> dict[str, Any]:
        return _ok(self.api.get("/me"))

    def update_me(self, **fields: Any) -> dict[str, Any]:
        return _ok(self.api.patch("/me", fields))

    def sign_in(self, context: Any) -> None:
        """Log a Playwright BrowserContext in (its request API shares the context's cookies)."""
        token = context.request.get(f"{self.base_url}/api/v1/csrf").json()["csrf_token"]
        resp = context.request.post(
            f"{self.base_url}/api/v1/auth/login",
            data={"email": self.email, "password": self.password},
            headers={"X-CSRFToken": token},
        )
        assert resp.ok, (resp.status, resp.text()[:500])


# --------------------------------------------------------------------------------------------
# The live server


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass  # one line per request would drown the test output


class LiveServer:
    """``webapp.create_app()`` served over HTTP on 127.0.0.1 from a background thread."""

    def __init__(self, database_url: str, instance_path: Path, **config: Any) -> None:
        self.database_url = database_url
        self.instance_path = instance_path
        self.config = {**TEST_CONFIG, "DATABASE_URL": database_url, **config}
        self.app = self._make_app()
        self._server: BaseWSGIServer = make_server(
            "127.0.0.1", 0, self._wsgi, threaded=True, request_handler=_QuietHandler
        )
        self.port = self._server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"live-server-{self.port}", daemon=True
        )
        self._thread.start()

    def _make_app(self) -> Any:
        # create_app reads the instance folder from the environment; set it only while building.
        saved = os.environ.get("TOUCHBASE_INSTANCE_PATH")
        os.environ["TOUCHBASE_INSTANCE_PATH"] = str(self.instance_path)
        try:
            return create_app(dict(self.config))
        finally:
            if saved is None:
                os.environ.pop("TOUCHBASE_INSTANCE_PATH", None)
            else:
                os.environ["TOUCHBASE_INSTANCE_PATH"] = saved

    def _wsgi(self, environ: dict, start_response: Callable) -> Any:
        return self.app(environ, start_response)

    def reload(self, **config: Any) -> None:
        """Serve a new app built with ``config`` added, on the same port and database."""
        old = self.app
        self.config.update(config)
        self.app = self._make_app()
        old.extensions["sqlalchemy"].engine.dispose()

    def api(self) -> ApiClient:
        return ApiClient(self.url)

    def fetch(self, path: str) -> Response:
        return self.api().request("GET", path)

    def register_rep(
        self, email: str | None = None, timezone: str = TIMEZONE, name: str = "Robin Rep"
    ) -> Rep:
        api = self.api()
        email = email or f"rep-{uuid.uuid4().hex[:10]}@example.com"
        body = {"email": email, "password": PASSWORD, "name": name, "timezone": timezone}
        result = _ok(api.post("/auth/register", body), 201)
        return Rep(email, PASSWORD, name, timezone, result["user"], api, self.url)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        self.app.extensions["sqlalchemy"].engine.dispose()


@pytest.fixture
def live_server(sqlite_template: str, tmp_path: Path) -> Iterator[LiveServer]:
    """A fresh app, database and port for each test (see the module docstring)."""
    db_path = tmp_path / "live.db"
    shutil.copy(sqlite_template, db_path)
    server = LiveServer(f"sqlite:///{db_path}", tmp_path / "instance")
    yield server
    server.stop()


@pytest.fixture
def rep(live_server: LiveServer) -> Rep:
    """A freshly registered rep in America/Chicago, logged in through ``rep.api``."""
    return live_server.register_rep()


# --------------------------------------------------------------------------------------------
# pytest-playwright, pointed at Debian's Chromium and a phone-sized context


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict[str, Any]:
    _require_chromium()
    return {"executable_path": CHROMIUM, "args": CHROMIUM_ARGS, "headless": True}


def _phone_args(base_url: str) -> dict[str, Any]:
    return {
        "viewport": PHONE,
        "screen": PHONE,
        "device_scale_factor": 1,
        "is_mobile": True,
        "has_touch": True,
        "base_url": base_url,
        "timezone_id": TIMEZONE,
        "locale": "en-US",
    }


@pytest.fixture
def browser_context_args(live_server: LiveServer) -> dict[str, Any]:
    return _phone_args(live_server.url)


@pytest.fixture
def persistent_context(
    playwright: Any, browser_type_launch_args: dict[str, Any], live_server: LiveServer, tmp_path
) -> Iterator[Any]:
    """A non-incognito Chromium context on a temporary profile (for installability checks)."""
    context = playwright.chromium.launch_persistent_context(
        str(tmp_path / "profile"), **browser_type_launch_args, **_phone_args(live_server.url)
    )
    yield context
    context.close()


def log_in(page: Any, rep: Any) -> None:
    """Log ``rep`` in through the app's own form and wait for today's screen."""
    from playwright.sync_api import expect

    page.goto("/")
    page.get_by_label("Email").fill(rep.email)
    page.get_by_label("Password").fill(rep.password)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#screen-title")).to_have_text("Today")


def wait_until(page: Any, function: str, arg: Any = None, timeout: float = 20.0) -> Any:
    """Poll ``page.evaluate(function, arg)`` until it answers something truthy; return that.

    Use this, not ``page.wait_for_function``: Playwright's polling evaluates the predicate with
    ``eval``, which the app's CSP (``script-src 'self'``, no ``unsafe-eval``) refuses. A plain
    ``evaluate`` goes through the DevTools protocol and is not subject to the page's CSP.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = page.evaluate(function, arg)
        except PlaywrightError as exc:
            # A reload in progress (e.g. after "Update available · Reload"): ask the next page.
            if "context was destroyed" not in str(exc) and "navigat" not in str(exc):
                raise
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout} s for {function!r}; last answer {value!r}")
        page.wait_for_timeout(50)


@pytest.fixture(name="wait_until")
def wait_until_fixture() -> Callable[..., Any]:
    """``wait_until(page, "() => navigator.serviceWorker.controller !== null")`` (see above)."""
    return wait_until


# --------------------------------------------------------------------------------------------
# The service worker over the Chrome DevTools Protocol (push tests)


class ServiceWorkerCDP:
    """A CDP session that knows the page's service worker registrations."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.session = page.context.new_cdp_session(page)
        self.registrations: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, dict[str, Any]] = {}
        # Subscribe before enabling: enable replays the existing registrations as events.
        self.session.on("ServiceWorker.workerRegistrationUpdated", self._registrations)
        self.session.on("ServiceWorker.workerVersionUpdated", self._versions)
        self.session.send("ServiceWorker.enable")

    def _registrations(self, event: dict[str, Any]) -> None:
        for reg in event["registrations"]:
            if reg.get("isDeleted"):
                self.registrations.pop(reg["registrationId"], None)
            else:
                self.registrations[reg["registrationId"]] = reg

    def _versions(self, event: dict[str, Any]) -> None:
        for version in event["versions"]:
            self.versions[version["versionId"]] = version

    def registration_id(self, scope: str | None = None, timeout: float = 15.0) -> str:
        """The id of the registration for ``scope`` (default: the page's origin + "/"), once a
        version of it is activated. Waits, letting CDP events arrive, up to ``timeout`` s."""
        origin = self.page.evaluate("location.origin")
        scope = scope or origin + "/"
        deadline = time.monotonic() + timeout
        while True:
            for reg_id, reg in self.registrations.items():
                active = any(
                    v["registrationId"] == reg_id and v["status"] == "activated"
                    for v in self.versions.values()
                )
                if reg["scopeURL"] == scope and active:
                    return reg_id
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no activated service worker for {scope}: {self.registrations}, "
                    f"{self.versions}"
                )
            self.page.wait_for_timeout(50)  # lets the CDP events be dispatched

    def deliver_push(self, data: Any, registration_id: str | None = None) -> None:
        """Fire the worker's push event with ``data`` (a dict is sent as JSON text)."""
        origin = self.page.evaluate("location.origin")
        self.session.send(
            "ServiceWorker.deliverPushMessage",
            {
                "origin": origin,
                "registrationId": registration_id or self.registration_id(),
                "data": data if isinstance(data, str) else json.dumps(data),
            },
        )

    def notifications(self) -> list[dict[str, Any]]:
        """The notifications the worker's registration shows now."""
        return self.page.evaluate(
            """async () => {
                const reg = await navigator.serviceWorker.ready;
                const shown = await reg.getNotifications();
                return shown.map((n) => ({
                    title: n.title, body: n.body, tag: n.tag, data: n.data,
                    actions: (n.actions || []).map((a) => ({action: a.action, title: a.title})),
                }));
            }"""
        )

    def detach(self) -> None:
        self.session.detach()


@pytest.fixture
def sw_cdp() -> Iterator[Callable[[Any], ServiceWorkerCDP]]:
    """A factory: ``sw_cdp(page)`` -> ServiceWorkerCDP (detached at the end of the test)."""
    made: list[ServiceWorkerCDP] = []

    def make(page: Any) -> ServiceWorkerCDP:
        helper = ServiceWorkerCDP(page)
        made.append(helper)
        return helper

    yield make
    for helper in made:
        with contextlib.suppress(Exception):  # the page or context may be gone already
            helper.detach()
