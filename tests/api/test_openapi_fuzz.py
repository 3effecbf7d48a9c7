"""Fuzz every operation of the served OpenAPI document: no request, valid or not, gets a 5xx.

Schemathesis reads ``GET /api/v1/openapi.json`` and generates requests for each operation, both
valid ones (positive mode) and ones that break the document (negative mode: wrong types, missing
or extra fields, NUL characters, huge numbers...). They go in process to the WSGI app as a
registered, logged-in rep: the session cookie and the ``X-CSRFToken`` header ride on every call.
The rep owns a client with touches and an open callback, and path ids are drawn from those real
ids as well as from random UUIDs, so the id-taking routes run past their 404.

Every answer must:
- not be a 5xx (the app runs with TESTING on, so an unhandled exception fails the test as well);
- agree with the document: a documented status, its content type and its response schema (the
  error answers are documented too, so this covers their shape);
- reject what negative mode generated (a 4xx), and carry the error shape of API.md on every 4xx,
  with the security headers, checked here directly rather than through the document.

Each call gets a fresh WSGI client with the same cookie. The operations that end the session
they are sent with, or put another one in its place (log out, log out everywhere, log in,
register, delete the account), are sent instead with a throwaway rep's session, registered for
that one case: sessions are rows on the server, so a fuzzed logout would otherwise log the
fuzzing rep out for every call after it, and a lucky DELETE /me would delete it. The test ends
by checking that the fuzzing rep is still logged in.

It runs on both database lanes, though most of what it finds is a property of the code: NUL
characters in text were accepted by SQLite and broke PostgreSQL with a 500. The budget (examples
per operation and mode) keeps the file at about 20 seconds a lane on two cores. The examples are
random (no fixed seed, no example database): a failure shows the case and a curl line.

This drives schemathesis' Python API (``openapi.from_wsgi``, ``APIOperation.as_strategy``,
``Case.call`` and ``Case.validate_response``) under a plain Hypothesis test, rather than its
pytest plugin, whose lazy ``from_fixture`` runner fails on pytest 9 (``Function._nodeid``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import Rep, register_rep

EXAMPLES_PER_OPERATION = 40
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    database=None,
    # Generation is slow for big bodies; the budget is the number of examples, not the time.
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
)


# Operations that end the session they are sent with, or replace it with another.
SESSION_ENDING = {
    ("POST", "/api/v1/auth/logout"),
    ("POST", "/api/v1/auth/logout-all"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/register"),
    ("DELETE", "/api/v1/me"),
}


def _call_kwargs(rep: Rep) -> dict[str, Any]:
    """What every call carries: the rep's session cookie and CSRF header."""
    cookie = rep.client.get_cookie("touchbase_session")
    assert cookie is not None
    return {
        "headers": {"X-CSRFToken": rep.token},
        "cookies": {"touchbase_session": cookie.value},
    }


def _throwaway(app: Flask) -> Callable[[], dict[str, Any]]:
    """For a session-ending operation: each case gets a new rep's session of its own."""
    return lambda: _call_kwargs(register_rep(app, email=f"fuzz-{uuid.uuid4().hex}@example.com"))


def _seed(rep: Rep) -> dict[str, str]:
    """Give the rep real ids to hit: a client with touches and an open callback."""
    client = rep.add_client("Fuzz Target", phone="312-555-0100", company="Acme", tags=["A"])
    assert rep.touch(client["id"], "reached").status_code == 201
    promise = rep.touch(client["id"], "left_message", callback_at="2030-01-02T15:00:00+00:00")
    assert promise.status_code == 201, promise.json
    return {"client_id": client["id"], "callback_id": promise.json["callback_id"]}


def _header(response: Any, name: str) -> str:
    # Schemathesis keeps headers with lower-case names and a list of values each.
    return ",".join(response.headers.get(name.lower(), []))


def _check_answer(case: Any, response: Any) -> None:
    """What the document does not say: the error shape, JSON always, the security headers."""
    status = response.status_code
    label = f"{case.method} {case.formatted_path} -> {status}"
    assert status < 500, label
    csp = _header(response, "Content-Security-Policy")
    assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp, label
    assert _header(response, "X-Content-Type-Options") == "nosniff", label
    if status == 204 or case.method.upper() == "HEAD":
        return
    if status == 200 and case.path.startswith("/api/v1/export/") and case.path.endswith(".csv"):
        # The exports are CSV files (documented as text/csv), not JSON.
        assert _header(response, "Content-Type").startswith("text/csv"), label
        return
    assert _header(response, "Content-Type").startswith("application/json"), label
    if status >= 400:
        body = response.json()
        assert isinstance(body, dict) and set(body) == {"error"}, (label, body)
        error = body["error"]
        assert set(error) <= {"code", "message", "fields"}, (label, body)
        assert isinstance(error["code"], str) and error["code"], (label, body)
        assert isinstance(error["message"], str) and error["message"], (label, body)
        if "fields" in error:
            assert all(
                isinstance(msgs, list) and all(isinstance(m, str) for m in msgs)
                for msgs in error["fields"].values()
            ), (label, body)


def _strategy(operation: Any, mode: GenerationMode, ids: dict[str, str]) -> Any:
    """Cases for one operation; path ids half the time from the rep's own rows."""
    generated = operation.as_strategy(generation_mode=mode)
    names = [p.name for p in operation.path_parameters]
    if not names:
        return generated
    real = {name: ids[name] for name in names}
    return st.one_of(operation.as_strategy(generation_mode=mode, path_parameters=real), generated)


def _use_real_ids(case: Any, ids: dict[str, str]) -> None:
    """Point a valid body at the rep's own rows (a touch that is written, an id that clashes)."""
    if isinstance(case.body, dict):
        for key in ("client_id", "callback_id"):
            if key in case.body:
                case.body[key] = ids[key]
        if case.formatted_path.endswith("/clients") and "id" in case.body:
            case.body["id"] = ids["client_id"]


def _fuzz_operation(
    operation: Any,
    mode: GenerationMode,
    ids: dict[str, str],
    call_kwargs: Callable[[], dict[str, Any]],
) -> Any:
    """A Hypothesis test sending ``mode`` cases for ``operation`` and checking every answer."""

    @FUZZ_SETTINGS
    @given(case=_strategy(operation, mode, ids), real_body_ids=st.booleans())
    def fuzz(case: Any, real_body_ids: bool) -> None:
        if real_body_ids and mode is GenerationMode.POSITIVE:
            _use_real_ids(case, ids)
        kwargs = call_kwargs()
        response = case.call(**kwargs)
        _check_answer(case, response)
        case.validate_response(response, checks=CHECKS, headers=kwargs["headers"])

    return fuzz


def _routes(app: Flask) -> set[tuple[str, str]]:
    """(method, path) of the app's API routes, written as the document writes them."""
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/") and not rule.rule.endswith("/openapi.json"):
            path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
            routes |= {(method, path) for method in rule.methods - {"HEAD", "OPTIONS"}}
    return routes


def test_fuzz_every_operation_no_server_errors(app):
    rep = register_rep(app)
    ids = _seed(rep)
    call_kwargs = _call_kwargs(rep)
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    # The document lists every route, so fuzzing it reaches all of them.
    assert {(op.method.upper(), op.path) for op in operations} == _routes(app)

    failures: list[str] = []
    for operation in operations:
        # Negative mode needs something to break; /csrf, /me, /today and /logout take no input.
        has_input = bool(operation.body) or any(True for _ in operation.iter_parameters())
        modes = [GenerationMode.POSITIVE] + [GenerationMode.NEGATIVE] * has_input
        route = (operation.method.upper(), operation.path)
        session_for_case = _throwaway(app) if route in SESSION_ENDING else lambda: call_kwargs
        for mode in modes:
            try:
                _fuzz_operation(operation, mode, ids, session_for_case)()
            # Collect every operation's failure, then fail once. Schemathesis reports check
            # failures as a FailureGroup, which is a BaseExceptionGroup.
            except (Exception, BaseExceptionGroup) as exc:
                failures.append(f"{operation.label} [{mode.value}]: {exc}")
    assert failures == [], "\n\n".join(failures)
    # No case logged the fuzzing rep out (or deleted it): every call above ran as the rep.
    assert rep.get("/me").status_code == 200
