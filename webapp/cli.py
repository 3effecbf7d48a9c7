"""Command-line tools: ``flask --app webapp <command>``."""

from __future__ import annotations

import click
from flask import Flask, current_app

from .db import db
from .errors import ApiError
from .schemas import RegisterSchema
from .services import accounts


@click.command("create-user")
@click.argument("email")
@click.option("--name", default="", help="The rep's name.")
@click.option("--timezone", default="UTC", show_default=True, help="IANA time zone.")
@click.password_option(help="At least 10 characters (asked for when not given).")
def create_user(email: str, name: str, timezone: str, password: str) -> None:
    """Make an account for EMAIL (asks for the password)."""
    errors = RegisterSchema().validate(
        {"email": email, "password": password, "name": name, "timezone": timezone}
    )
    if errors:
        for field, messages in errors.items():
            click.echo(f"{field}: {' '.join(messages)}", err=True)
        raise SystemExit(2)
    try:
        accounts.register(
            db.session, email, password, name, timezone, current_app.config["PASSWORD_HASH_METHOD"]
        )
    except ApiError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"Created {accounts.normalise_email(email)}.")


def init_app(app: Flask) -> None:
    """Register the commands."""
    app.cli.add_command(create_user)
