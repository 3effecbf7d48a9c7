"""Command-line tools: ``flask --app webapp <command>``."""

from __future__ import annotations

import logging

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from . import dispatch
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


@click.command("dispatch")
@click.option("--once", is_flag=True, help="Send what is due now, then exit.")
@click.option(
    "--interval", type=float, help="Seconds between passes [TOUCHBASE_DISPATCH_INTERVAL]."
)
@click.option("--batch", type=int, default=dispatch.BATCH, show_default=True)
@click.option("--lease", type=float, default=dispatch.LEASE, show_default=True, help="Seconds.")
@click.option("--concurrency", type=int, default=dispatch.CONCURRENCY, show_default=True)
@with_appcontext
def dispatch_command(
    once: bool, interval: float | None, batch: int, lease: float, concurrency: int
) -> None:
    """Send due callback reminders by Web Push: forever, or --once."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s dispatch %(levelname)s %(message)s")
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    dispatcher = dispatch.Dispatcher(app, batch=batch, lease=lease, concurrency=concurrency)
    try:
        if once:
            stats = dispatcher.run_once()
            click.echo(
                f"claimed {stats.claimed}, notified {stats.notified}, deferred {stats.deferred}, "
                f"retrying {stats.retried}, failed {stats.failed}, no device {stats.no_device}, "
                f"tests {stats.tests}, digests {stats.digests}, weekly {stats.weekly}"
            )
        else:
            dispatch.install_signal_handlers(dispatcher)
            dispatcher.run_forever(interval or app.config["DISPATCH_INTERVAL"])
    finally:
        dispatcher.close()


@click.command("import-clients")
@click.argument("email")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as the API's JSON.")
@with_appcontext
def import_clients_command(email: str, file: str, as_json: bool) -> None:
    """Import a CSV or vCard FILE into the clients of the rep with EMAIL."""
    import json

    import sqlalchemy as sa

    from .models import users
    from .services import imports

    row = db.session.execute(
        sa.select(users.c.id, users.c.tier_a_days, users.c.tier_b_days, users.c.tier_c_days).where(
            users.c.email == accounts.normalise_email(email)
        )
    ).first()
    db.session.rollback()
    if row is None:
        raise click.ClickException(f"No account with the email {email}.")
    tiers = {"A": row.tier_a_days, "B": row.tier_b_days, "C": row.tier_c_days}
    try:
        with open(file, "rb") as stream, db.write() as conn:
            summary = imports.import_file(
                conn, row.id, stream, current_app.config["DEFAULT_REGION"], tiers
            )
    except ApiError as exc:
        raise click.ClickException(exc.message) from exc
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False))
        return
    click.echo(
        f"created {summary['created']}, updated {summary['updated']}, "
        f"skipped {summary['skipped']}, problems {len(summary['errors'])}"
    )
    for problem in summary["errors"]:
        click.echo(f"line {problem['line']}: {problem['message']}")


@click.command("backup")
@click.argument("path", type=click.Path(dir_okay=False, writable=True))
@click.option("--force", is_flag=True, help="Replace PATH if it exists.")
@with_appcontext
def backup_command(path: str, force: bool) -> None:
    """Back up the database to PATH while the app runs (SQLite: online backup; PostgreSQL:
    pg_dump). The instance secrets are not in it: keep them too."""
    from .services import backup

    try:
        result = backup.backup(db.engine, path, force=force)
    except backup.BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Backed up to {result.path} ({result.method}).")
    if result.counts:
        click.echo(", ".join(f"{count} {table}" for table, count in result.counts.items()))
    if result.revision:
        click.echo(f"Schema revision {result.revision}.")
    secrets = [
        f"{current_app.instance_path}/{name} (or TOUCHBASE_{env})"
        for name, env in (
            ("secret_key", "SECRET_KEY"),
            ("vapid_private_key.pem", "VAPID_PRIVATE_KEY"),
        )
    ]
    click.echo("Not in the backup, keep them with it: " + "; ".join(secrets) + ".")


def init_app(app: Flask) -> None:
    """Register the commands."""
    app.cli.add_command(backup_command)
    app.cli.add_command(create_user)
    app.cli.add_command(dispatch_command)
    app.cli.add_command(import_clients_command)
