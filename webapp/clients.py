"""Clients API: thin views (load → service → dump)."""

from __future__ import annotations

from typing import Any

from flask import current_app

from .api import Blueprint, quick_dump
from .db import db
from .schemas import (
    ClientCreateSchema,
    ClientListArgsSchema,
    ClientListSchema,
    ClientSchema,
    ClientUpdateSchema,
)
from .security import rep_id, require_login
from .services import clients

blp = Blueprint("clients", __name__, description="The rep's clients")
blp.before_request(require_login)

# Answers copied without marshmallow's per-field machinery (api.quick_dump): same output.
_CLIENT = quick_dump(ClientSchema())


def _region() -> str:
    return current_app.config["DEFAULT_REGION"]


@blp.route("/clients", methods=["GET"])
@blp.arguments(ClientListArgsSchema(), location="query")
@blp.response(200, quick_dump(ClientListSchema()))
def list_clients(args: dict[str, Any]) -> dict[str, Any]:
    """Active clients by name; ``q`` searches name, company, phone and email."""
    return clients.list_clients(db.session, rep_id(), **args)


@blp.route("/clients", methods=["POST"])
@blp.arguments(ClientCreateSchema())
@blp.response(201, _CLIENT)
@blp.alt_response(200, schema=ClientSchema, description="Replay of a create with the same id")
def create_client(data: dict[str, Any]) -> Any:
    """Create a client (optionally with a client-chosen id, for offline creation)."""
    client, created = clients.create_client(db.session, rep_id(), data, _region())
    return client if created else (client, 200)


@blp.route("/clients/<uuid:client_id>", methods=["GET"])
@blp.response(200, _CLIENT)
def get_client(client_id: Any) -> dict[str, Any]:
    """One client, archived ones included."""
    return clients.get_client(db.session, rep_id(), str(client_id))


@blp.route("/clients/<uuid:client_id>", methods=["PATCH"])
@blp.arguments(ClientUpdateSchema())
@blp.response(200, _CLIENT)
def update_client(data: dict[str, Any], client_id: Any) -> dict[str, Any]:
    """Change some fields of a client."""
    return clients.update_client(db.session, rep_id(), str(client_id), data, _region())


@blp.route("/clients/<uuid:client_id>", methods=["DELETE"])
@blp.response(204)
def archive_client(client_id: Any) -> None:
    """Archive a client: off the lists, history kept."""
    clients.archive_client(db.session, rep_id(), str(client_id))
