"""Push API: the VAPID key, a browser's subscription, and a test notification."""

from __future__ import annotations

from typing import Any

from flask import current_app

from .api import Blueprint
from .db import db
from .schemas import (
    PushKeySchema,
    PushSubscribeSchema,
    PushSubscriptionSchema,
    PushTestSchema,
    PushUnsubscribeSchema,
)
from .security import login_first, rep_id
from .services import push

blp = Blueprint("push", __name__, description="Web Push subscriptions")


@blp.route("/push/key", methods=["GET"])
@blp.response(200, PushKeySchema)
def get_key() -> dict[str, Any]:
    """The server's VAPID public key, for ``pushManager.subscribe``; it is not a secret."""
    return {"public_key": current_app.extensions["touchbase_push"]["public_key"]}


@blp.route("/push/subscriptions", methods=["POST"])
@login_first
@blp.arguments(PushSubscribeSchema())
@blp.response(201, PushSubscriptionSchema)
@blp.alt_response(200, schema=PushSubscriptionSchema, description="Already known; now this rep's")
def subscribe(data: dict[str, Any]) -> Any:
    """Store this browser's subscription. The endpoint must be on the push-service allow-list."""
    origins = current_app.extensions["touchbase_push"]["origins"]
    with db.write() as conn:
        row, created = push.subscribe(conn, rep_id(), data, origins)
    return row if created else (row, 200)


@blp.route("/push/subscriptions", methods=["DELETE"])
@login_first
@blp.arguments(PushUnsubscribeSchema())
@blp.response(204)
def unsubscribe(data: dict[str, Any]) -> None:
    """Forget this browser's subscription (on log out); an unknown endpoint is fine too."""
    with db.write() as conn:
        push.unsubscribe(conn, rep_id(), data["endpoint"])


@blp.route("/push/test", methods=["POST"])
@login_first
@blp.response(202, PushTestSchema)
def send_test() -> dict[str, Any]:
    """Queue a test notification to each of this rep's devices; the dispatcher sends it."""
    return {"devices": push.request_test(db.session, rep_id())}


def init_app(app: Any) -> None:
    """Parse the allow-list and derive the public key once, at start-up (a bad list fails it)."""
    app.extensions["touchbase_push"] = {
        "origins": push.parse_origins(app.config.get("PUSH_ORIGINS")),
        "public_key": push.public_key(app.config["VAPID_PRIVATE_KEY"]),
    }
