"""The WSGI app for the benchmarks: Touchbase itself, plus a bare Flask app beside it.

``POST /bench/bare`` is served by a separate, minimal Flask app (no extensions, no session, no
hooks) mounted in the same WSGI process with werkzeug's DispatcherMiddleware. It reads the JSON
body and answers a small JSON body: the "bare Flask JSON endpoint" of DESIGN.md's performance
method. Both apps run in the same gunicorn workers, so the server, the sockets and the machine
are shared and only the work per request differs.

Serve it with ``gunicorn 'bench_app:create_bench_app()'`` (with ``--pythonpath bench`` and
``--chdir`` at the project root), or import ``create_bench_app`` in process.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from webapp import create_app

BARE_PATH = "/bench/bare"


def create_bare_app() -> Flask:
    """A plain Flask app with one JSON route and nothing else."""
    bare = Flask("bare")

    @bare.post("/bare")
    def bare_endpoint() -> Any:
        body = request.get_json(silent=True) or {}
        return jsonify(ok=True, id=body.get("id")), 201

    return bare


def create_bench_app(test_config: dict[str, Any] | None = None) -> Flask:
    """``create_app()`` (same settings), with the bare app mounted at ``/bench``."""
    app = create_app(test_config)
    app.wsgi_app = DispatcherMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, {"/bench": create_bare_app().wsgi_app}
    )
    return app
