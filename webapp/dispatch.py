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

The morning digest and the weekly summary (``send_summaries``) are pushed once per rep per local
day (per local week) on the same send path; their rules are in the comment above SUMMARY_GRACE.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import Session

from . import scheduling
from .models import DISPATCHABLE, callbacks, clients, push_subscriptions, users, utcnow
from .services.push import Answer, Sender, endpoint_origin, topic
from .services.stats import week_summary
from .services.today import today_for

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
    digests: int = 0
    weekly: int = 0

    def add(self, other: Stats) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class _Job:
    callback_id: str
    subscription: dict[str, Any]
    payload: dict[str, Any]
    topic: str
    urgency: str = "high"
    ttl: int | None = None  # None: the sender's (reminders)


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


# The morning digest and the weekly summary
#
# Each rep may ask for a digest of today's list at a local "HH:MM" (``digest_time``) and for last
# week's figures on Monday morning (``weekly_push``: at the digest time, else at ``call_time``).
# What the dispatcher does, and why:
# - Once per local day (week): ``digest_sent_on`` (``weekly_sent_on``, the Monday) is written only
#   after a push service accepted it, and only if it is still older than that day.
# - Inside quiet hours it goes out all the same: the rep picked that time for it themselves.
# - Late, within reason: from the chosen time until SUMMARY_GRACE later (never past local
#   midnight), so a dispatcher that was down at 7:00 still sends at 8:30; after that the day's
#   is skipped: a "good morning" in mid-afternoon is noise, and by then the rep has seen the list.
#   The push's TTL ends at the same moment, for a phone that is off. Turning the digest on for a
#   time that passed less than SUMMARY_GRACE ago sends today's at once.
# - Nothing due: it says so ("Nothing due today"). A rep who asked for a morning digest and gets
#   silence cannot tell a clear day from a broken phone.
# - DST: the time is on the rep's clock (``scheduling.at_local``): 07:00 stays 07:00 across the
#   change; a time the clocks skip (02:30 on the spring-forward night) goes out when it would have
#   read 02:30 (03:30), an ambiguous one at its first occurrence.
# - Only to reps with a device; a 404/410 deletes that device; 429, 5xx, timeouts and 400/401/403
#   are retried with the callbacks' backoff (kept in this dispatcher's memory: the window bounds
#   it) on every device, the Topic making a repeat replace the first at the push service.
# - Several dispatchers, and kill -9: a lease needs an expiry that passes when its holder dies,
#   and a date column cannot hold one. So the lease is a lock the database or the kernel drops
#   with the process: on PostgreSQL the rep rows are locked (FOR NO KEY UPDATE SKIP LOCKED, which
#   blocks neither the rep's other writes nor foreign keys) in a transaction held open across the
#   send and committed with the "sent" date; on SQLite (one host) a flock on a file beside the
#   database lets one dispatcher at a time send summaries. A dispatcher killed mid-send commits
#   nothing and lets go, and the next pass sends it; at worst the push went out and is sent again,
#   replacing itself (same Topic, same notification tag).

SUMMARY_GRACE = timedelta(hours=3)
SUMMARY_URGENCY = "normal"
MONDAY = 0
DIGEST, WEEKLY = "digest", "weekly"
_SENT_ON = {DIGEST: users.c.digest_sent_on, WEEKLY: users.c.weekly_sent_on}
_TAGS = {DIGEST: "touchbase-digest", WEEKLY: "touchbase-weekly"}
# Where a tap leads: today's list; the weekly figures (a route the app may not have falls back
# to today's list, which is the right place on a Monday morning too).
_URLS = {DIGEST: "/#/today", WEEKLY: "/#/stats"}
_REP_COLUMNS = [
    users.c.id,
    users.c.timezone,
    users.c.call_time,
    users.c.daily_goal,
    users.c.reconnect_after_days,
    users.c.tier_a_days,
    users.c.tier_b_days,
    users.c.tier_c_days,
    users.c.digest_time,
    users.c.digest_sent_on,
    users.c.weekly_push,
    users.c.weekly_sent_on,
]


@dataclass(frozen=True)
class SummaryRep:
    """The rep's settings the summaries read (``today_for`` takes it like the web's user)."""

    id: str
    timezone: str
    call_time: str
    daily_goal: int
    reconnect_after_days: int
    tier_a_days: int
    tier_b_days: int
    tier_c_days: int

    @property
    def tiers(self) -> dict[str, int]:
        return {"A": self.tier_a_days, "B": self.tier_b_days, "C": self.tier_c_days}

    @classmethod
    def of(cls, row: Any) -> SummaryRep:
        return cls(**{name: getattr(row, name) for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class _Summary:
    """One summary due for one rep: which, for which local day (the Monday, for the weekly),
    and when it goes stale."""

    kind: str
    user_id: str
    day: date
    until: datetime

    @property
    def key(self) -> tuple[str, str, date]:
        return (self.kind, self.user_id, self.day)


@dataclass
class _Prepared:
    summary: _Summary
    payload: dict[str, Any]
    devices: list[dict[str, Any]]


def summary_window(
    now: datetime, tz: ZoneInfo, at: str, sent_on: date | None, *, weekday: int | None = None
) -> tuple[date, datetime] | None:
    """If a summary at local ``at`` is due at ``now``: its local day and when it goes stale.

    Due from ``at`` on the rep's clock that day until SUMMARY_GRACE later (cut at local
    midnight), unless ``sent_on`` is that day or later; with ``weekday``, only on that weekday.
    """
    day = scheduling.local_today(now, tz)
    if weekday is not None and day.weekday() != weekday:
        return None
    if sent_on is not None and sent_on >= day:
        return None
    try:
        start = scheduling.at_local(day, scheduling.parse_hhmm(at), tz)
    except ValueError:
        return None
    until = min(start + SUMMARY_GRACE, scheduling.end_of_local_day(day, tz))
    return (day, until) if start <= now < until else None


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def digest_payload(calls: int, promised: int, names: list[str]) -> dict[str, Any]:
    """The morning digest: "6 calls today, 2 promised", then who comes first on the list."""
    if calls == 0:
        title = "Nothing due today"
        body = "No promised callbacks and no check-ins due. Enjoy the clear list."
    else:
        title = f"{_plural(calls, 'call')} today, {promised or 'none'} promised"
        shown = [name for name in names[:3] if name]
        more = calls - len(shown)
        body = ", ".join(shown) + (f" and {more} more" if more > 0 else "") + "."
    return _summary_payload(DIGEST, title, body)


def _percent(share: float) -> str:
    return f"{round(share * 100)}%"


def weekly_payload(figures: dict[str, Any]) -> dict[str, Any]:
    """The Monday summary of last week (``stats.week_summary``): calls, reach, promises kept,
    and how much of each tier is within its rhythm."""
    calls, reached = figures["calls"], figures["reached"]
    title = f"Last week: {_plural(calls, 'call')}, {reached} reached"
    parts = []
    if calls and figures.get("reach_rate") is not None:
        parts.append(f"Reach rate {_percent(figures['reach_rate'])}.")
    due, kept = figures["promises_due"], figures["promises_kept"]
    parts.append(f"Promises kept: {kept} of {due}." if due else "No promises fell due.")
    coverage = figures.get("coverage") or {}
    tiers = [f"{t} {_percent(coverage[t])}" for t in "ABC" if coverage.get(t) is not None]
    if tiers:
        parts.append("On rhythm: " + ", ".join(tiers) + ".")
    return _summary_payload(WEEKLY, title, " ".join(parts))


def _summary_payload(kind: str, title: str, body: str) -> dict[str, Any]:
    return {
        "title": title,
        "body": body,
        "url": _URLS[kind],
        "callback_id": None,
        "client_id": None,
        "tag": _TAGS[kind],
        "kind": kind,
    }


def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _monday_somewhere(now: datetime) -> bool:
    """Whether it is Monday in some time zone (UTC-12 to UTC+14) at ``now``."""
    return any((now + timedelta(hours=h)).weekday() == MONDAY for h in (-12, 0, 14))


def _lock_path(engine: sa.Engine) -> str | None:
    """The file whose flock guards summaries on SQLite (None: PostgreSQL, or in memory)."""
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return f"{database}.summaries.lock"


_MEMORY_LOCK = threading.Lock()


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
        # (kind, rep, local day) -> (time.time() before which not to retry, failed attempts).
        self.summary_retry: dict[tuple[str, str, date], tuple[float, int]] = {}
        self.summary_lock_path = _lock_path(self.engine)
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
        """Send queued test notifications and due summaries, then claim and send batches of
        callbacks until none is due."""
        total = Stats()
        total.tests = self.send_tests()
        total.add(self.send_summaries())
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
        answer = self.sender.send(
            job.subscription, job.payload, job.topic, urgency=job.urgency, ttl=job.ttl
        )
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
            return _record_devices(conn, _flat(results), now)

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

    # The morning digest and the weekly summary (rules: see the comment above SUMMARY_GRACE)

    def send_summaries(self) -> Stats:
        """Send the digests and weekly summaries due now, each once; return what was sent."""
        stats = Stats()
        with self._summary_lock() as held:
            if not held:
                return stats  # another dispatcher on this SQLite file is sending them
            now = utcnow()
            due = self.due_summaries(now)
            for start in range(0, len(due), self.batch):
                stats.add(self._summary_batch(due[start : start + self.batch], now))
        return stats

    def due_summaries(self, now: datetime) -> list[_Summary]:
        """The summaries due at ``now`` for reps with a device, minus those backing off."""
        latest = (now + timedelta(hours=14)).date()  # the latest local date anywhere
        sent = users.c.digest_sent_on
        wanted = sa.and_(users.c.digest_time.is_not(None), sa.or_(sent.is_(None), sent < latest))
        if _monday_somewhere(now):
            weekly = users.c.weekly_sent_on
            wanted = sa.or_(
                wanted,
                sa.and_(users.c.weekly_push.is_(True), sa.or_(weekly.is_(None), weekly < latest)),
            )
        has_device = sa.exists().where(push_subscriptions.c.user_id == users.c.id)
        with self.read_engine.connect() as conn:
            rows = conn.execute(sa.select(*_REP_COLUMNS).where(wanted, has_device)).all()
        clock = time.time()
        oldest = (now - timedelta(days=2)).date()
        self.summary_retry = {k: v for k, v in self.summary_retry.items() if k[2] >= oldest}
        due: list[_Summary] = []
        for row in rows:
            tz = _zone(row.timezone)
            if tz is None:
                continue
            if row.digest_time:
                window = summary_window(now, tz, row.digest_time, row.digest_sent_on)
                if window is not None:
                    due.append(_Summary(DIGEST, row.id, *window))
            if row.weekly_push:
                at = row.digest_time or row.call_time
                window = summary_window(now, tz, at, row.weekly_sent_on, weekday=MONDAY)
                if window is not None:
                    due.append(_Summary(WEEKLY, row.id, *window))
        return [s for s in due if self.summary_retry.get(s.key, (0.0, 0))[0] <= clock]

    @contextmanager
    def _summary_lock(self) -> Iterator[bool]:
        """SQLite: a flock the kernel drops if this process dies (PostgreSQL locks rows)."""
        if self.postgres:
            yield True
            return
        if self.summary_lock_path is None:
            got = _MEMORY_LOCK.acquire(blocking=False)
            try:
                yield got
            finally:
                if got:
                    _MEMORY_LOCK.release()
            return
        fd = os.open(self.summary_lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _summary_batch(self, due: list[_Summary], now: datetime) -> Stats:
        """Claim, build, send and record one batch of summaries."""
        ids = sorted({s.user_id for s in due})
        current = sa.select(users.c.id, users.c.digest_sent_on, users.c.weekly_sent_on).where(
            users.c.id.in_(ids)
        )
        if self.postgres:
            # The lease: these rows stay locked until the "sent" dates are committed; rows
            # another dispatcher holds are skipped, not waited for.
            with self.engine.begin() as conn:
                rows = conn.execute(current.with_for_update(skip_locked=True, key_share=True))
                live = self._prepare(_unsent(due, rows.all()))
                answers = self._send_summaries(live)
                return self._record_summaries(conn, live, answers)
        # SQLite: the flock taken in send_summaries is the lease.
        with self.read_engine.connect() as conn:
            unsent = _unsent(due, conn.execute(current).all())
        live = self._prepare(unsent)
        answers = self._send_summaries(live)
        with self.engine.begin() as conn:
            return self._record_summaries(conn, live, answers)

    def _prepare(self, due: list[_Summary]) -> list[_Prepared]:
        """Each summary's payload (from the same services as the app) and the rep's devices.

        One rep whose figures cannot be built is logged and left out, not the whole batch.
        """
        ids = sorted({s.user_id for s in due})
        out: list[_Prepared] = []
        if not ids:
            return out
        with self.read_engine.connect() as conn:
            reps = {
                row.id: SummaryRep.of(row)
                for row in conn.execute(sa.select(*_REP_COLUMNS).where(users.c.id.in_(ids)))
            }
            devices: dict[str, list[dict[str, Any]]] = defaultdict(list)
            subs = sa.select(*_SUB_COLUMNS).where(push_subscriptions.c.user_id.in_(ids))
            for sub in conn.execute(subs):
                devices[sub.user_id].append(dict(sub._mapping))
            conn.rollback()
            for summary in due:
                rep = reps.get(summary.user_id)
                if rep is None or not devices[summary.user_id]:
                    continue
                try:
                    with Session(bind=conn) as session:
                        payload = self._payload(session, summary, rep)
                except Exception:
                    log.exception("%s for rep %s could not be built", summary.kind, rep.id)
                    continue
                out.append(_Prepared(summary, payload, devices[summary.user_id]))
        return out

    def _payload(self, session: Session, summary: _Summary, rep: SummaryRep) -> dict[str, Any]:
        if summary.kind == DIGEST:
            items = today_for(session, rep)["items"]
            promised = sum(1 for item in items if item["reason"] == "callback")
            return digest_payload(len(items), promised, [i["client"]["name"] for i in items])
        # Monday morning: the week that just ended (summary.day is this week's Monday).
        return weekly_payload(week_summary(session, rep.id, summary.day - timedelta(days=7)))

    def _send_summaries(
        self, live: list[_Prepared]
    ) -> list[tuple[_Prepared, dict[str, Any], Answer]]:
        """Send each summary to each of its rep's devices; no lease deadline (see above)."""
        now = utcnow()
        pairs = [(p, sub) for p in live for sub in p.devices]
        jobs = [
            _Job(
                "",
                sub,
                p.payload,
                _TAGS[p.summary.kind],
                SUMMARY_URGENCY,
                max(int((p.summary.until - now).total_seconds()), 60),  # stale then
            )
            for p, sub in pairs
        ]
        answers = self._map(self._send, jobs, float("inf"))
        return [(p, sub, a) for (p, sub), a in zip(pairs, answers, strict=True)]

    def _record_summaries(
        self,
        conn: sa.Connection,
        live: list[_Prepared],
        answers: list[tuple[_Prepared, dict[str, Any], Answer]],
    ) -> Stats:
        """Mark what was delivered (only if still unsent that day); plan retries for the rest."""
        now = utcnow()
        by_summary: dict[tuple[str, str, date], list[Answer]] = defaultdict(list)
        for prepared, _sub, answer in answers:
            by_summary[prepared.summary.key].append(answer)
        marks: dict[str, list[dict[str, Any]]] = {DIGEST: [], WEEKLY: []}
        stats = Stats()
        for prepared in live:
            summary = prepared.summary
            got = by_summary[summary.key]
            kinds = {a.kind for a in got}
            if kinds & {"retry", "config"}:
                _, attempts = self.summary_retry.get(summary.key, (0.0, 0))
                wait = max([backoff(attempts + 1)] + [a.retry_after or 0.0 for a in got])
                self.summary_retry[summary.key] = (time.time() + wait, attempts + 1)
                stats.retried += 1
            elif "sent" in kinds:
                marks[summary.kind].append({"b_id": summary.user_id, "b_day": summary.day})
                self.summary_retry.pop(summary.key, None)
            # every device gone: they are deleted below, and a rep with none is not asked again
        for kind, rows in marks.items():
            if rows:
                column = _SENT_ON[kind]
                conn.execute(
                    sa.update(users)
                    .where(
                        users.c.id == sa.bindparam("b_id"),
                        sa.or_(column.is_(None), column < sa.bindparam("b_day")),
                    )
                    .values({column.name: sa.bindparam("b_day")}),
                    rows,
                )
        stats.digests, stats.weekly = len(marks[DIGEST]), len(marks[WEEKLY])
        stats.pushes = sum(1 for _, _, a in answers if a.kind != "skip")
        stats.gone = _record_devices(conn, ((sub, a) for _, sub, a in answers), now)
        return stats


def _unsent(due: list[_Summary], rows: Iterable[Any]) -> list[_Summary]:
    """The summaries whose rep row (as just read or locked) has not had that day's yet."""
    current = {row.id: row for row in rows}
    unsent = []
    for summary in due:
        row = current.get(summary.user_id)
        if row is None:
            continue  # locked by another dispatcher (PostgreSQL), or the rep is gone
        sent_on = getattr(row, _SENT_ON[summary.kind].name)
        if sent_on is None or sent_on < summary.day:
            unsent.append(summary)
    return unsent


def _flat(results: _Results) -> Iterable[tuple[dict[str, Any], Answer]]:
    for answers in results.by_callback.values():
        yield from answers


def _record_devices(
    conn: sa.Connection, answers: Iterable[tuple[dict[str, Any], Answer]], now: datetime
) -> int:
    """Note each device's answer: success, one more failure, or gone (deleted). Returns how many
    were gone."""
    answers = list(answers)
    sent = sorted({s["endpoint"] for s, a in answers if a.kind == "sent"})
    gone = sorted({s["endpoint"] for s, a in answers if a.kind == "gone"})
    failed = {s["endpoint"]: a.detail for s, a in answers if a.kind in ("retry", "config")}
    if sent:
        conn.execute(
            sa.update(push_subscriptions)
            .where(push_subscriptions.c.endpoint.in_(sent))
            .values(last_success_at=now, failures=0, last_error=None)
        )
    if failed:
        conn.execute(_SUB_FAILED, [{"b_endpoint": e, "error": d} for e, d in failed.items()])
    if gone:
        conn.execute(sa.delete(push_subscriptions).where(push_subscriptions.c.endpoint.in_(gone)))
    return len(gone)


def install_signal_handlers(dispatcher: Dispatcher) -> None:
    """SIGTERM and SIGINT end the loop after the current pass (leases cover a hard kill)."""

    def stop(*_args: object) -> None:
        dispatcher.stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
