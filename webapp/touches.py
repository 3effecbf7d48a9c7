"""The call log API: record a touch, and a client's history."""

from __future__ import annotations

from typing import Any

from .api import Blueprint, quick_dump
from .db import db
from .schemas import (
    ListArgsSchema,
    TouchCreateSchema,
    TouchListArgsSchema,
    TouchListSchema,
    TouchSchema,
)
from .security import rep_id, require_login
from .services import touches

blp = Blueprint("touches", __name__, description="The call log")
blp.before_request(require_login)

# The answer to every logged call: marshmallow's output, made without its per-field machinery.
_TOUCH = quick_dump(TouchSchema())
_TOUCHES = quick_dump(TouchListSchema())


@blp.route("/touches", methods=["POST"])
@blp.arguments(TouchCreateSchema())
@blp.response(201, _TOUCH)
@blp.alt_response(200, schema=_TOUCH, description="Replay of the same touch")
def create_touch(data: dict[str, Any]) -> Any:
    """Log a call. Idempotent by ``id``: a replay answers 200, a different body 409."""
    new = touches.prepare_touch(rep_id(), data)
    with db.fast_write() as conn:
        touch, created = touches.write_touch(conn, new)
    return touch if created else (touch, 200)


@blp.route("/touches", methods=["GET"])
@blp.arguments(TouchListArgsSchema(), location="query")
@blp.response(200, _TOUCHES)
def list_all_touches(args: dict[str, Any]) -> dict[str, Any]:
    """This rep's touches, newest first; or (``updated_since``) the newly arrived, for sync."""
    return touches.list_rep_touches(db.session, rep_id(), **args)


@blp.route("/clients/<uuid:client_id>/touches", methods=["GET"])
@blp.arguments(ListArgsSchema(), location="query")
@blp.response(200, _TOUCHES)
def list_touches(args: dict[str, Any], client_id: Any) -> dict[str, Any]:
    """A client's touches, newest first."""
    return touches.list_touches(db.session, rep_id(), str(client_id), **args)
