"""The dispatcher: claims due callbacks in batches and sends one Web Push per device of the rep.

Run it with ``flask --app webapp dispatch`` (forever) or ``--once`` (until nothing is due, then
exit). Any number may run against one database.

Claiming. A pass takes up to ``batch`` due callbacks with a lease: ``claimed_until`` is set to
now + ``lease`` and ``claim_token`` to the pass's own token, in one statement. On PostgreSQL the
rows are picked with ``FOR UPDATE SKIP LOCKED``, so concurrent dispatchers take different rows
without waiting for each other; on SQLite the UPDATE runs in an IMMEDIATE transaction, which
writers take one at a time. A dispatcher killed mid-batch leaves its leases behind; they run out
and the next pass claims those callbacks again. Results are written only where the token still
matches, so a callback snoozed or cancelled while its push was in flight keeps the new state.

``claimed_until`` is also the callback's "not before": quiet hours, backoff and ``Retry-After``
set it to the time the callback may next be tried, with no token, so nothing claims it sooner.

What counts as due: open, not yet notified, not given up on (``last_error`` is null), due_at
passed, and no live lease. That is the partial index ``ix_callbacks_dispatch``, which stays as
small as the queue however many old callbacks accumulate.

Outcomes, per callback, from the answers of its rep's devices:
- every device accepted (201), or some did and the rest are gone: ``notified_at`` is set;
- any device answered 429, 5xx, a timeout or a configuration error (400/401/403): the callback
  is tried again later (all its devices: the Topic header and the notification tag make a
  repeat replace the first), after 5 s, 15 s, 45 s... or ``Retry-After`` if that is longer.
  After ``max_attempts`` failures ``last_error`` says why, and the dispatcher stops;
- no device at all (none subscribed, or every one answered 404/410): ``last_error`` says so and
  the callback leaves the queue instead of being claimed on every pass. A snooze clears it.
Devices that answered 404/410 are deleted, matched on the endpoint.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from flask import Flask

from .models import DISPATCHABLE, callbacks, clients, push_subscriptions, users, utcnow
from .services.push import Answer, Sender, endpoint_origin, topic

log = logging.getLogger(__name__)

BATCH = 100
LEASE = 120.0  # seconds; longer than a batch takes, even with slow push services
CONCURRENCY = 8  # pushes in flight at once, per dispatcher
MAX_ATTEMPTS = 8
FIRST_RETRY = 5.0  # seconds; then three times longer each time
MAX_RETRY = 3600.0
MIN_SLEEP = 0.05

_DUE = sa.text(DISPATCHABLE)
_SUB_COLUMNS = [
    push_subscriptions.c.id,
    push_subscriptions.c.user_id,
    push_subscriptions.c.endpoint,
    push_subscriptions.c.p256dh,
    push_subscriptions.c.auth,
]
_ROWS = (
    sa.select(
        callbacks.c.id,
        callbacks.c.user_id,
        callbacks.c.client_id,
        callbacks.c.due_at,
        callbacks.c.send_attempts,
        clients.c.name,
        users.c.timezone,
        users.c.quiet_start,
        users.c.quiet_end,
    )
    .join(clients, clients.c.id == callbacks.c.client_id)
    .join(users, users.c.id == callbacks.c.user_id)
)
# One statement per outcome, run for many rows at once (executemany).
_SET_LATER = (
    sa.update(callbacks)
    .where(callbacks.c.id == sa.bindparam("b_id"), callbacks.c.claim_token == sa.bindparam("tok"))
    .values(
        claimed_until=sa.bindparam("until"),
        claim_token=None,
        send_attempts=sa.bindparam("attempts"),
    )
)
_GIVE_UP = (
    sa.update(callbacks)
    .where(callbacks.c.id == sa.bindparam("b_id"), callbacks.c.claim_token == sa.bindparam("tok"))
    .values(
        claimed_until=None,
        claim_token=None,
        send_attempts=sa.bindparam("attempts"),
        last_error=sa.bindparam("error"),
        updated_at=sa.bindparam("now"),
    )
)
_SUB_FAILED = (
    sa.update(push_subscriptions)
    .where(push_subscriptions.c.endpoint == sa.bindparam("b_endpoint"))
    .values(failures=push_subscriptions.c.failures + 1, last_error=sa.bindparam("error"))
)

NO_DEVICE = "No device has notifications turned on."
TEST_PAYLOAD = {
    "title": "Touchbase",
    "body": "Notifications are on. Reminders will look like this.",
    "url": "/#/settings",
    "callback_id": None,
    "client_id": None,
    "tag": "touchbase-test",
}


@dataclass
class Stats:
    """What one pass did (the CLI prints it; tests and the bench read it)."""

    claimed: int = 0
    pushes: int = 0
    notified: int = 0
    deferred: int = 0
    retried: int = 0
    failed: int = 0
    no_device: int = 0
    released: int = 0
    tests: int = 0
    gone: int = 0

    def add(self, other: Stats) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class _Job:
    callback_id: str
    subscription: dict[str, Any]
    payload: dict[str, Any]
    topic: str


@dataclass
class _Results:
    """The answers of one batch, gathered per callback."""

    by_callback: dict[str, list[tuple[dict[str, Any], Answer]]] = field(
        default_factory=lambda: defaultdict(list)
    )


def quiet_until(now: datetime, zone: str, start: str | None, end: str | None) -> datetime | None:
    """When the rep's quiet hours end, if ``now`` is inside them (else None).

    ``start``/``end`` are local "HH:MM"; either null turns quiet hours off. A window whose start
    is after its end crosses midnight (21:00-08:00). The end is taken on the right local day and
    turned back into UTC, so DST changes move it with the rep's clock.
    """
    if not start or not end or start == end:
        return None
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        tz = ZoneInfo("UTC")
    local = now.astimezone(tz)
    begin, finish, current = dtime.fromisoformat(start), dtime.fromisoformat(end), local.time()
    inside = begin <= current < finish if begin < finish else current >= begin or current < finish
    if not inside:
        return None
    day = local.date() if current < finish else local.date() + timedelta(days=1)
    return datetime.combine(day, finish, tzinfo=tz).astimezone(UTC)


def _when(due: datetime, today: date) -> str:
    """'Thursday 9:00' (in the rep's zone); with the date when it is over a week ago."""
    clock = f"{due.hour}:{due.minute:02d}"
    if today - due.date() < timedelta(days=7):
        return f"{due:%A} {clock}"
    return f"{due:%A} {due.day} {due:%B} {clock}"


def reminder(row: Any, now: datetime) -> dict[str, Any]:
    """The push payload for one callback: the title names the client, the body the promise."""
    try:
        tz = ZoneInfo(row.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        tz = ZoneInfo("UTC")
    due = row.due_at.astimezone(tz)
    return {
        "title": f"Call {row.name}",
        "body": f"You said you'd call back {_when(due, now.astimezone(tz).date())}",
        "url": f"/#/clients/{row.client_id}",
        "callback_id": row.id,
        "client_id": row.client_id,
        "tag": f"callback-{row.id}",
    }


def backoff(attempts: int) -> float:
    """Seconds before try number ``attempts + 1``: 5, 15, 45, ... up to an hour."""
    return min(FIRST_RETRY * 3 ** max(attempts - 1, 0), MAX_RETRY)


class Dispatcher:
    """One dispatcher: a database, a push sender, and per-origin rate-limit memory."""

    def __init__(
        self,
        app: Flask,
        *,
        batch: int = BATCH,
        lease: float = LEASE,
        concurrency: int = CONCURRENCY,
        max_attempts: int = MAX_ATTEMPTS,
        sender: Sender | None = None,
    ) -> None:
        state = app.extensions["sqlalchemy"]
        self.engine: sa.Engine = state.write_engine
        self.read_engine: sa.Engine = state.engine
        self.postgres = self.engine.dialect.name == "postgresql"
        self.batch = batch
        self.lease = lease
        self.max_attempts = max_attempts
        self.sender = sender or Sender(
            app.config["VAPID_PRIVATE_KEY"],
            app.config["VAPID_SUBJECT"],
            app.extensions["touchbase_push"]["origins"],
            pool_size=max(concurrency, 1),
        )
        # Push-service origin -> time.time() before which it must not be sent to (429).
        self.blocked: dict[str, float] = {}
        self.pool = ThreadPoolExecutor(concurrency) if concurrency > 1 else None
        self.stop = threading.Event()

    def close(self) -> None:
        """Release the thread pool and the HTTP connections."""
        if self.pool is not None:
            self.pool.shutdown()
        self.sender.close()

    # The loop

    def run_forever(self, interval: float) -> None:
        """Pass after pass until ``stop`` is set (SIGTERM/SIGINT finish the current pass).

        Between passes it sleeps ``interval`` seconds, or less when the next callback comes due
        (or a retry or quiet hours end) sooner: a callback due at T goes out by T + interval
        even when it was made a moment before.
        """
        while not self.stop.is_set():
            try:
                self.run_once()
                wake = self.next_wake()
            except Exception:
                # The database went away for a moment, or one bad row broke a batch: its leases
                # run out and the next pass tries again. The loop itself must not die, since
                # `manage.py serve` stops the web server too when the dispatcher ends.
                log.exception("dispatch pass failed; trying again in %s s", interval)
                wake = None
            delay = interval if wake is None else (wake - utcnow()).total_seconds()
            self.stop.wait(min(max(delay, MIN_SLEEP), interval))

    def run_once(self) -> Stats:
        """Send queued test notifications, then claim and send batches until none is due."""
        total = Stats()
        total.tests = self.send_tests()
        while not self.stop.is_set():
            stats = self.dispatch_batch()
            total.add(stats)
            if stats.claimed < self.batch:
                break
        return total

    def next_wake(self) -> datetime | None:
        """The earliest time something may become sendable: a due time, a deferral, a lease."""
        with self.read_engine.connect() as conn:
            due = conn.execute(
                sa.select(sa.func.min(callbacks.c.due_at)).where(
                    _DUE, callbacks.c.claimed_until.is_(None)
                )
            ).scalar()
            held = conn.execute(
                sa.select(sa.func.min(callbacks.c.claimed_until)).where(
                    _DUE, callbacks.c.claimed_until.is_not(None)
                )
            ).scalar()
        times = [t for t in (due, held) if t is not None]
        return min(times) if times else None

    # Claiming

    def claim(self, now: datetime) -> tuple[str, list[Any], list[dict[str, Any]]]:
        """Lease up to ``batch`` due callbacks; return the token, the rows and the devices."""
        due = (
            sa.select(callbacks.c.id)
            .where(
                _DUE,
                callbacks.c.due_at <= now,
                sa.or_(callbacks.c.claimed_until.is_(None), callbacks.c.claimed_until < now),
            )
            .order_by(callbacks.c.due_at)
            .limit(self.batch)
        )
        with self.read_engine.connect() as conn:
            # A plain read first: an idle pass takes no write lock (SQLite has only one).
            if conn.execute(due.limit(1)).first() is None:
                return "", [], []
        if self.postgres:
            due = due.with_for_update(skip_locked=True)
        token = uuid.uuid4().hex
        with self.engine.begin() as conn:
            ids = (
                conn.execute(
                    sa.update(callbacks)
                    .where(callbacks.c.id.in_(due.scalar_subquery()))
                    .values(claimed_until=now + timedelta(seconds=self.lease), claim_token=token)
                    .returning(callbacks.c.id)
                )
                .scalars()
                .all()
            )
            if not ids:
                return token, [], []
            rows = conn.execute(_ROWS.where(callbacks.c.id.in_(ids))).all()
            reps = {row.user_id for row in rows}
            subs = conn.execute(
                sa.select(*_SUB_COLUMNS).where(push_subscriptions.c.user_id.in_(reps))
            ).all()
        return token, rows, [dict(s._mapping) for s in subs]

    # One batch

    def dispatch_batch(self) -> Stats:
        """Claim one batch, send its pushes, and record what each callback's answers mean."""
        started = time.monotonic()
        now = utcnow()
        token, rows, subs = self.claim(now)
        stats = Stats(claimed=len(rows))
        if not rows:
            return stats
        devices: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for sub in subs:
            devices[sub["user_id"]].append(sub)

        later: list[dict[str, Any]] = []  # quiet hours: not before their end
        no_device: list[str] = []
        jobs: list[_Job] = []
        for row in rows:
            until = quiet_until(now, row.timezone, row.quiet_start, row.quiet_end)
            if until is not None:
                later.append(
                    {"b_id": row.id, "tok": token, "until": until, "attempts": row.send_attempts}
                )
                continue
            if not devices[row.user_id]:
                no_device.append(row.id)
                continue
            payload = reminder(row, now)
            jobs.extend(_Job(row.id, sub, payload, topic(row.id)) for sub in devices[row.user_id])
        stats.deferred = len(later)

        # Stop sending in time to write the results before the lease runs out.
        margin = min(sum(self.sender.timeout) + 1.0, self.lease / 2)
        deadline = started + self.lease - margin
        results = _Results()
        for job, answer in zip(jobs, self._map(self._send, jobs, deadline), strict=True):
            results.by_callback[job.callback_id].append((job.subscription, answer))
        stats.pushes = sum(1 for _, a in _flat(results) if a.kind != "skip")

        attempts = {row.id: row.send_attempts for row in rows}
        notified: list[str] = []
        release: list[str] = []
        give_up: list[dict[str, Any]] = []
        for callback_id, answers in results.by_callback.items():
            kinds = {answer.kind for _, answer in answers}
            if "skip" in kinds:
                release.append(callback_id)
            elif kinds & {"retry", "config"}:
                tries = attempts[callback_id] + 1
                worst = [a for _, a in answers if a.kind in ("retry", "config")]
                if tries >= self.max_attempts:
                    error = f"Not delivered after {tries} attempts: {worst[-1].detail}"
                    give_up.append(
                        {"b_id": callback_id, "tok": token, "attempts": tries, "error": error}
                    )
                    log.warning("callback %s: %s", callback_id, error)
                else:
                    wait = max([backoff(tries)] + [a.retry_after or 0.0 for a in worst])
                    later.append(
                        {
                            "b_id": callback_id,
                            "tok": token,
                            "until": utcnow() + timedelta(seconds=wait),
                            "attempts": tries,
                        }
                    )
                    stats.retried += 1
            elif "sent" in kinds:
                notified.append(callback_id)
            else:
                no_device.append(callback_id)
        give_up.extend(
            {"b_id": cid, "tok": token, "attempts": attempts[cid], "error": NO_DEVICE}
            for cid in no_device
        )
        stats.notified, stats.released = len(notified), len(release)
        stats.no_device = len(no_device)
        stats.failed = len(give_up) - len(no_device)
        stats.gone = self._record(token, notified, release, later, give_up, results)
        return stats

    def _map(self, send: Any, jobs: list[_Job], deadline: float) -> Iterable[Answer]:
        if self.pool is None or len(jobs) < 2:
            return [send(job, deadline) for job in jobs]
        return self.pool.map(send, jobs, [deadline] * len(jobs))

    def _send(self, job: _Job, deadline: float) -> Answer:
        """Send one push, unless its lease is nearly over or its push service said to wait."""
        if time.monotonic() > deadline:
            return Answer("skip", None, "lease nearly over")
        origin = endpoint_origin(job.subscription["endpoint"])
        blocked = self.blocked.get(origin, 0.0) - time.time()
        if blocked > 0:
            return Answer("retry", None, "rate limited by the push service", blocked)
        answer = self.sender.send(job.subscription, job.payload, job.topic)
        if answer.status == 429:
            wait = answer.retry_after if answer.retry_after is not None else backoff(1)
            self.blocked[origin] = max(self.blocked.get(origin, 0.0), time.time() + wait)
        if answer.kind == "config":
            log.error(
                "PUSH CONFIGURATION ERROR from %s: %s. Check the VAPID key and subject "
                "(TOUCHBASE_VAPID_PRIVATE_KEY, TOUCHBASE_VAPID_SUBJECT) and the allow-list.",
                origin,
                answer.detail,
            )
        return answer

    def _record(
        self,
        token: str,
        notified: list[str],
        release: list[str],
        later: list[dict[str, Any]],
        give_up: list[dict[str, Any]],
        results: _Results,
    ) -> int:
        """Write one batch's outcomes in one transaction; return how many devices were gone."""
        now = utcnow()
        sent = sorted({s["endpoint"] for s, a in _flat(results) if a.kind == "sent"})
        gone = sorted({s["endpoint"] for s, a in _flat(results) if a.kind == "gone"})
        failed = {
            s["endpoint"]: a.detail for s, a in _flat(results) if a.kind in ("retry", "config")
        }
        mine = callbacks.c.claim_token == token
        with self.engine.begin() as conn:
            if notified:
                conn.execute(
                    sa.update(callbacks)
                    .where(callbacks.c.id.in_(notified), mine)
                    .values(
                        notified_at=now,
                        claimed_until=None,
                        claim_token=None,
                        send_attempts=0,
                        updated_at=now,
                    )
                )
            if release:
                conn.execute(
                    sa.update(callbacks)
                    .where(callbacks.c.id.in_(release), mine)
                    .values(claimed_until=None, claim_token=None)
                )
            if later:
                conn.execute(_SET_LATER, later)
            if give_up:
                conn.execute(_GIVE_UP, [{**row, "now": now} for row in give_up])
            if sent:
                conn.execute(
                    sa.update(push_subscriptions)
                    .where(push_subscriptions.c.endpoint.in_(sent))
                    .values(last_success_at=now, failures=0, last_error=None)
                )
            if failed:
                conn.execute(
                    _SUB_FAILED, [{"b_endpoint": e, "error": d} for e, d in failed.items()]
                )
            if gone:
                conn.execute(
                    sa.delete(push_subscriptions).where(push_subscriptions.c.endpoint.in_(gone))
                )
        return len(gone)

    # Test notifications

    def send_tests(self) -> int:
        """Send the test notifications reps asked for (POST /push/test); return how many.

        Taking the request clears it in the same statement, so two dispatchers never both send
        one. A test that fails is not retried: the rep sees nothing arrive and can ask again.
        """
        pending = push_subscriptions.c.test_requested_at.is_not(None)
        with self.read_engine.connect() as conn:
            if (
                conn.execute(sa.select(push_subscriptions.c.id).where(pending).limit(1)).first()
                is None
            ):
                return 0
        with self.engine.begin() as conn:
            subs = conn.execute(
                sa.update(push_subscriptions)
                .where(pending)
                .values(test_requested_at=None)
                .returning(*_SUB_COLUMNS)
            ).all()
        jobs = [_Job("", dict(s._mapping), TEST_PAYLOAD, "touchbase-test") for s in subs]
        answers = list(self._map(self._send, jobs, time.monotonic() + self.lease))
        gone = [
            job.subscription["endpoint"]
            for job, a in zip(jobs, answers, strict=True)
            if a.kind == "gone"
        ]
        if gone:
            with self.engine.begin() as conn:
                conn.execute(
                    sa.delete(push_subscriptions).where(push_subscriptions.c.endpoint.in_(gone))
                )
        return sum(1 for a in answers if a.kind == "sent")


def _flat(results: _Results) -> Iterable[tuple[dict[str, Any], Answer]]:
    for answers in results.by_callback.values():
        yield from answers


def install_signal_handlers(dispatcher: Dispatcher) -> None:
    """SIGTERM and SIGINT end the loop after the current pass (leases cover a hard kill)."""

    def stop(*_args: object) -> None:
        dispatcher.stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
