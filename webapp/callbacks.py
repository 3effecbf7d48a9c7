"""Callbacks API: the rep's promises to call again."""

from __future__ import annotations

from typing import Any

from .api import Blueprint, quick_dump
from .db import db
from .schemas import (
    CallbackCreateSchema,
    CallbackListArgsSchema,
    CallbackListSchema,
    CallbackSchema,
    SnoozeSchema,
)
from .security import rep_id, require_login
from .services import callbacks

blp = Blueprint("callbacks", __name__, description="Promised callbacks")
blp.before_request(require_login)

# Answers copied without marshmallow's per-field machinery (api.quick_dump): same output.
_CALLBACK = quick_dump(CallbackSchema())


@blp.route("/callbacks", methods=["GET"])
@blp.arguments(CallbackListArgsSchema(), location="query")
@blp.response(200, quick_dump(CallbackListSchema()))
def list_callbacks(args: dict[str, Any]) -> dict[str, Any]:
    """Callbacks, soonest first; ``status=open`` for the promises still to keep."""
    return callbacks.list_callbacks(db.session, rep_id(), **args)


@blp.route("/callbacks", methods=["POST"])
@blp.arguments(CallbackCreateSchema())
@blp.response(201, _CALLBACK)
@blp.alt_response(200, schema=CallbackSchema, description="Replay of the same promise")
def create(data: dict[str, Any]) -> Any:
    """Promise to call a client at ``due_at``, without a call (e.g. "call Dana on Friday").

    It replaces the client's other open promises. Idempotent by ``id``: the same id for the
    same client answers 200 with the promise as it is now (it may have been snoozed since).
    """
    callback, created = callbacks.create_callback(
        db.session, rep_id(), str(data["id"]), str(data["client_id"]), data["due_at"]
    )
    return callback if created else (callback, 200)


@blp.route("/callbacks/<uuid:callback_id>/snooze", methods=["POST"])
@blp.arguments(SnoozeSchema())
@blp.response(200, _CALLBACK)
def snooze(data: dict[str, Any], callback_id: Any) -> dict[str, Any]:
    """Move a promise to a new time; it notifies again then."""
    return callbacks.snooze_callback(db.session, rep_id(), str(callback_id), data["until"])


@blp.route("/callbacks/<uuid:callback_id>", methods=["DELETE"])
@blp.response(204)
def cancel(callback_id: Any) -> None:
    """Cancel a promise."""
    callbacks.cancel_callback(db.session, rep_id(), str(callback_id))
