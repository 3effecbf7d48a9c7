"""The phone app: the app shell (``static/``), its manifest and its service worker.

The service worker's precache version is a content hash of the shell files, computed once when
the blueprint is registered (that is, at start-up) and written into ``/sw.js``. A deploy that
changes any shell file changes ``/sw.js`` byte for byte, which is what makes browsers install
the new worker and the app show "Update available".

The stylesheet and the scripts (``static/js/**.js`` and ``sw.js``) are served minified, also
worked out once at start-up: the sources keep their comments for people. CSS goes through
rcssmin; JavaScript through webapp/js_minify.py, which parses it (tree-sitter) and changes only
the spacing and comments between tokens, never a string, template or regex (rjsmin, a regex
minifier, was tried and dropped the space in a nested template literal). The version hashes
both each source and what is served of it.

The shell folder is ``static/`` next to the package, or ``STATIC_DIR`` in the app config (or
``TOUCHBASE_STATIC_DIR`` in the environment), which the browser tests use to stage a deploy.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

import rcssmin
from flask import Blueprint, Flask, Response, current_app, request, send_from_directory
from flask.blueprints import BlueprintSetupState

from webapp.js_minify import minify as minify_js

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_STATIC = os.path.join(ROOT, "static")
SW_SOURCE = os.path.join(ROOT, "service_worker", "sw.js")
# Icons are fetched by the OS at install time, not on every start: left out of the precache.
NOT_PRECACHED = ("icons/",)
# Tests that may sit next to the modules are no part of the shell.
TEST_FILE_MARKS = (".test.", ".spec.")
PRELOAD_MARK = "<!--modulepreload-->"
MINIFIED_TYPES = {".css": "text/css", ".js": "text/javascript"}

bp = Blueprint("pwa", __name__)


@dataclass(frozen=True)
class Shell:
    """What the app serves for the shell, worked out once at start-up."""

    folder: str
    version: str
    index_html: bytes
    sw_js: bytes
    # Minified stylesheets and scripts by path under the folder, e.g. "css/app.css".
    assets: dict[str, bytes]


def _files(folder: str) -> list[str]:
    """Every file under ``folder``, as sorted '/'-separated relative paths."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.startswith("."):
                continue
            rel = os.path.relpath(os.path.join(dirpath, name), folder)
            found.append(rel.replace(os.sep, "/"))
    return sorted(found)


def _minified(rel: str, data: bytes) -> bytes | None:
    """What is served of a shell file when it is not served as stored, else None."""
    ext = os.path.splitext(rel)[1]
    if ext == ".css":
        return rcssmin.cssmin(data.decode("utf-8")).encode()
    if ext == ".js":
        return minify_js(data, rel)
    return None


def build_shell(folder: str, sw_source: str = SW_SOURCE) -> Shell:
    """Hash the shell files and the worker into a version; render index.html and sw.js."""
    files = [rel for rel in _files(folder) if not any(m in rel for m in TEST_FILE_MARKS)]
    digest = hashlib.sha256()
    assets = {}
    for rel in files:
        with open(os.path.join(folder, rel), "rb") as fh:
            data = fh.read()
        served = _minified(rel, data)
        if served is not None:
            assets[rel] = served
        # The source, so that any edit makes a new version (even a comment's), and what is
        # served, so that a new minifier's output does too.
        digest.update(rel.encode() + b"\0" + hashlib.sha256(data).digest())
        digest.update(hashlib.sha256(data if served is None else served).digest())
    with open(sw_source, "rb") as fh:
        sw_source_bytes = fh.read()
    sw_text = minify_js(sw_source_bytes, "sw.js").decode("utf-8")
    digest.update(b"sw\0" + sw_source_bytes + b"\0" + sw_text.encode())
    version = digest.hexdigest()[:16]

    # Preload every module so the browser fetches them in parallel, not import by import.
    modules = [rel for rel in files if rel.startswith("js/") and rel.endswith(".js")]
    preload = "\n".join(f'<link rel="modulepreload" href="/static/{rel}">' for rel in modules)
    with open(os.path.join(folder, "index.html"), encoding="utf-8") as fh:
        index = fh.read().replace(PRELOAD_MARK, preload)

    precache = ["/", "/manifest.webmanifest"] + [
        f"/static/{rel}"
        for rel in files
        if rel not in ("index.html", "manifest.webmanifest") and not rel.startswith(NOT_PRECACHED)
    ]
    sw = sw_text.replace('"__VERSION__"', json.dumps(version)).replace(
        '"__PRECACHE__"', json.dumps(precache, separators=(",", ":"))
    )
    return Shell(folder, version, index.encode(), sw.encode(), assets)


@bp.record_once
def _setup(state: BlueprintSetupState) -> None:
    app: Flask = state.app
    folder = app.config.get("STATIC_DIR") or os.environ.get("TOUCHBASE_STATIC_DIR")
    app.extensions["touchbase_shell"] = build_shell(folder or DEFAULT_STATIC)


def _shell() -> Shell:
    return current_app.extensions["touchbase_shell"]


def _text(body: bytes, mimetype: str) -> Response:
    response = Response(body, mimetype=mimetype)
    # Always revalidate: a new deploy shows at once. Offline starts come from the worker's cache.
    response.headers["Cache-Control"] = "no-cache"
    response.add_etag()
    return response.make_conditional(request)


@bp.get("/")
def index() -> Any:
    """The app shell; every screen is drawn by the scripts."""
    return _text(_shell().index_html, "text/html")


@bp.get("/sw.js")
def service_worker() -> Any:
    """The service worker, with the precache version and file list written in."""
    response = _text(_shell().sw_js, "text/javascript")
    response.headers["X-Shell-Version"] = _shell().version
    return response


@bp.get("/manifest.webmanifest")
def manifest() -> Any:
    """The web app manifest (name, icons, colours) that makes the app installable."""
    response = send_from_directory(
        _shell().folder, "manifest.webmanifest", mimetype="application/manifest+json", max_age=0
    )
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/static/<path:filename>")
def static_file(filename: str) -> Any:
    """A shell file, revalidated by ETag (the worker serves it from its cache when installed)."""
    minified = _shell().assets.get(filename)
    if minified is not None:
        return _text(minified, MINIFIED_TYPES[os.path.splitext(filename)[1]])
    response = send_from_directory(_shell().folder, filename, max_age=0)
    response.headers["Cache-Control"] = "no-cache"
    return response
