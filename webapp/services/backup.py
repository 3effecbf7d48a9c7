"""A backup of the database while the app keeps running (``flask --app webapp backup PATH``).

SQLite (the embedded default): SQLite's online backup API, through Python's
``sqlite3.Connection.backup``, copies the whole file in one step from one read transaction.
In WAL mode a reader never blocks the writers, so the app keeps logging calls meanwhile, and
the copy is the database as it was at one instant: never half of a write. The copy is made
next to PATH, checked with ``PRAGMA integrity_check``, switched to a plain rollback journal (one
self-contained file) and only then renamed to PATH, so PATH is never a half-written backup.

PostgreSQL: ``pg_dump`` does the same job better than anything here could (one repeatable-read
snapshot, no lock that stops writers), so this runs it, in its custom format, for the URL the
app uses, and checks the archive reads back with ``pg_restore --list``. Without ``pg_dump`` on
the PATH it says so and prints the exact command to run elsewhere.

What no backup here holds: the instance secrets (``secret_key``, ``vapid_private_key.pem``, or
their ``TOUCHBASE_*`` variables). Keep them with the backups: without the same VAPID key every
phone has to turn reminders on again, and without the same secret key every rep logs in again
and every calendar URL changes.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

# The tables a rep's data lives in, counted in the summary.
TABLES = ("users", "clients", "touches", "callbacks", "push_subscriptions")


class BackupError(Exception):
    """The backup was not made; the message says why and what to do."""


@dataclass
class BackupResult:
    """What was written where, for the command's summary."""

    path: Path
    method: str
    counts: dict[str, int] = field(default_factory=dict)
    revision: str | None = None


def backup(engine: sa.Engine, path: str | os.PathLike[str], *, force: bool = False) -> BackupResult:
    """Back up the database behind ``engine`` to ``path`` (see the module docstring)."""
    dest = Path(path).resolve()
    if dest.exists() and not force:
        raise BackupError(f"{dest} already exists (use --force to replace it).")
    if not dest.parent.is_dir():
        raise BackupError(f"{dest.parent} is not a folder.")
    tmp = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
    try:
        if engine.dialect.name == "sqlite":
            result = _backup_sqlite(engine, tmp)
        elif engine.dialect.name == "postgresql":
            result = _backup_postgresql(engine.url, tmp, dest)
        else:
            raise BackupError(f"No backup method for {engine.dialect.name}.")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    result.path = dest
    return result


def _backup_sqlite(engine: sa.Engine, tmp: Path) -> BackupResult:
    raw = engine.raw_connection()  # the app's own settings: WAL, busy timeout
    try:
        source = raw.driver_connection
        assert isinstance(source, sqlite3.Connection)
        target = sqlite3.connect(tmp, isolation_level=None)
        try:
            source.backup(target)  # pages=-1: the whole file in one step, one snapshot
            target.execute("PRAGMA journal_mode=DELETE")  # one file, no -wal beside it
            check = target.execute("PRAGMA integrity_check").fetchall()
            if check != [("ok",)]:
                raise BackupError(f"The copy failed its integrity check: {check[:5]}")
            return BackupResult(tmp, "sqlite online backup", *_summary(target))
        finally:
            target.close()
    finally:
        raw.close()


def _summary(conn: sqlite3.Connection) -> tuple[dict[str, int], str | None]:
    names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    counts = {
        table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        for table in TABLES
        if table in names
    }
    revision = None
    if "alembic_version" in names:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        revision = row[0] if row else None
    return counts, revision


def libpq_conninfo(url: sa.URL) -> str:
    """The libpq keyword/value string for a SQLAlchemy PostgreSQL URL, without the password.

    Query parameters (``options=-csearch_path=...``, ``sslmode``...) are libpq's own and pass
    through; the password goes in ``PGPASSWORD`` instead, so it is never on a command line.
    """
    parts = {
        "host": url.host,
        "port": url.port,
        "dbname": url.database,
        "user": url.username,
        **{key: value for key, value in url.query.items() if isinstance(value, str)},
    }
    return " ".join(f"{key}={_quote(str(value))}" for key, value in parts.items() if value)


def _quote(value: str) -> str:
    if value and re.fullmatch(r"[\w.@/:+=,-]+", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _schema(url: sa.URL) -> str | None:
    """The schema a ``search_path`` option puts the app in, if the URL sets one."""
    options = url.query.get("options")
    found = re.search(r"search_path\s*=\s*([^\s,]+)", options) if isinstance(options, str) else None
    return found.group(1) if found else None


def pg_dump_command(url: sa.URL, path: Path) -> list[str]:
    """The pg_dump command for the app's database (only its schema, when the URL names one)."""
    command = ["pg_dump", "--format=custom", "--file", str(path), "--dbname", libpq_conninfo(url)]
    schema = _schema(url)
    if schema:
        command += ["--schema", schema]
    return command


def _backup_postgresql(url: sa.URL, tmp: Path, dest: Path) -> BackupResult:
    shown = shlex.join(pg_dump_command(url, dest))
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        password = "PGPASSWORD=... " if url.password else ""
        raise BackupError(
            "pg_dump is not installed here, so no backup was made. Install the PostgreSQL "
            "client tools (the server's major version or newer), or run this where they are:\n"
            f"  {password}{shown}"
        )
    env = {**os.environ}
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    command = [pg_dump, *pg_dump_command(url, tmp)[1:]]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BackupError(f"pg_dump failed ({done.returncode}): {done.stderr.strip()}\n  {shown}")
    _verify_archive(tmp, env)
    return BackupResult(tmp, "pg_dump, custom format (restore with pg_restore)")


def _verify_archive(path: Path, env: dict[str, str]) -> None:
    """Read the archive's table of contents back, when pg_restore is here: every table's data
    must be in it."""
    pg_restore = shutil.which("pg_restore")
    if pg_restore is None:
        return
    listed = subprocess.run(
        [pg_restore, "--list", str(path)], env=env, capture_output=True, text=True, check=False
    )
    if listed.returncode != 0:
        raise BackupError(f"The archive does not read back: {listed.stderr.strip()}")
    missing = [t for t in TABLES if not re.search(rf"TABLE DATA \S+ {t} ", listed.stdout)]
    if missing:
        raise BackupError(f"The archive lacks the data of: {', '.join(missing)}")
