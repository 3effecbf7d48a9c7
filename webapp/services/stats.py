"""The rep's habit figures: today's progress, the streak, coverage by tier, promises kept,
persistence, inactive clients with an opener, and the weekly summary.

Nothing here is a counter. Every figure is recomputed from the call log (``touches``) and the
promises (``callbacks``) on each request; the clients' derived columns (``last_touch_at``,
``last_reached_at``, ``attempts_since_reached``) are themselves rebuilt from the log in the same
transaction as each touch (services/touches.py), so they are used as they are.

Days are the rep's local days. Their edges come from ``scheduling.at_local`` (midnight in the
rep's zone, as an instant), and touches are counted between those instants, so a day that is
23 or 25 hours long across a DST change is counted as exactly that day. Weeks run Monday to
Sunday in the same local days.

The shape of every answer is the issue 6 contract (``StatsSchema`` in schemas.py). The rules
that need no database (tiers, the streak walk, judging a promise, the opener) are plain
functions, unit-tested with frozen values.
"""

from __future__ import annotations

import heapq
import itertools
import re
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .. import scheduling
from ..models import callbacks, clients, touches, users, utcnow
from .accounts import DEFAULT_PROMPTS

TIER_NAMES = ("A", "B", "C")
WINDOW_DAYS = 30  # promises: the last 30 days before today
BROKEN_LIMIT = 20
SLIPPING_LIMIT = 10
PERSISTENCE_MIN = 3  # attempts since last reached before a client is listed
PERSISTENCE_LIMIT = 20
INACTIVE_LIMIT = 10
# Days of touch counts read at a time while walking the streak back. The first batch also covers
# this week and last week; older batches are read only while the streak is still unbroken.
STREAK_BATCH = 64
_MIDNIGHT = time(0, 0)


# --- The rep's settings ----------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """What the figures need to know about the rep."""

    id: str
    tz: ZoneInfo
    daily_goal: int
    streak_weekends: bool
    tiers: dict[str, int]
    prompts: tuple[str, ...]


def settings_of(user: Any) -> Settings:
    """The figures' settings from the request's CurrentUser (or any row with the same fields)."""
    return Settings(
        id=user.id,
        tz=ZoneInfo(user.timezone),
        daily_goal=user.daily_goal,
        streak_weekends=bool(user.streak_weekends),
        tiers={"A": user.tier_a_days, "B": user.tier_b_days, "C": user.tier_c_days},
        prompts=tuple(user.prompts) if user.prompts else DEFAULT_PROMPTS,
    )


def load_settings(session: Session, user_id: str) -> Settings:
    """Read the rep's settings; LookupError when the account is gone."""
    row = session.execute(
        sa.select(
            users.c.id,
            users.c.timezone,
            users.c.daily_goal,
            users.c.streak_weekends,
            users.c.tier_a_days,
            users.c.tier_b_days,
            users.c.tier_c_days,
            users.c.prompts,
        ).where(users.c.id == user_id)
    ).first()
    if row is None:
        raise LookupError(f"no user {user_id!r}")
    return settings_of(row)


# --- Pure rules ------------------------------------------------------------------------------


def client_tier(tags: Iterable[str], tiers: Mapping[str, int]) -> str | None:
    """The tier a client belongs to, by its tier tags, or None.

    The tag grammar is scheduling's (``"A"``, ``"tier b"``, ``"Tier:C"``...). With several tier
    tags the one with the shortest cadence wins, as in ``scheduling.effective_cadence``, so a
    client is counted where its most demanding rhythm puts it; a tie goes to the first name.
    """
    by_name = {name.casefold(): name for name in tiers}
    best: str | None = None
    for tag in tags:
        match = scheduling._TIER_TAG.fullmatch(tag.strip())
        if match is None:
            continue
        name = by_name.get(match.group(1).casefold())
        if name is not None and (best is None or (tiers[name], name) < (tiers[best], best)):
            best = name
    return best


def share(part: int, whole: int) -> float | None:
    """``part / whole`` to three places, or None when there is nothing to divide."""
    return round(part / whole, 3) if whole else None


def streak(
    count_on: Callable[[date], int], today: date, goal: int, weekends: bool
) -> tuple[int, bool]:
    """Return (streak length in days, goal met today) for ``count_on(day)`` calls a day.

    The streak is the run of days ending yesterday on which calls reached ``goal``, plus today
    once today's goal is met (so an unfinished today never breaks it). Without ``weekends``,
    Saturdays and Sundays are stepped over: they neither extend nor break the run. ``count_on``
    must return 0 for days before the rep's first call (goal is at least 1, so the walk stops).
    """
    if goal < 1:
        raise ValueError(f"goal must be at least 1, got {goal}")
    met_today = count_on(today) >= goal
    days = 1 if met_today and (weekends or scheduling.is_business_day(today)) else 0
    day = today - timedelta(days=1)
    while True:
        if weekends or scheduling.is_business_day(day):
            if count_on(day) < goal:
                return days, met_today
            days += 1
        day -= timedelta(days=1)


@dataclass(frozen=True)
class Promise:
    """One non-cancelled callback, with the local days that judge it."""

    id: str
    client_id: str
    due_at: datetime
    status: str
    done_at: datetime | None
    due_day: date
    done_day: date | None

    @property
    def kept(self) -> bool:
        """Fulfilled by a call on or before its local due date."""
        return self.done_day is not None and self.done_day <= self.due_day

    def broken(self, today: date) -> bool:
        """Its due date has passed and it was not kept (still open, or kept late)."""
        return self.due_day < today and not self.kept

    def counts(self, today: date) -> bool:
        """Whether it is judged yet: due before today, or due today and already kept."""
        return self.due_day < today or (self.due_day == today and self.kept)

    def days_late(self, today: date) -> int:
        """Days between the due date and the call that kept it (or today, while open)."""
        end = self.done_day if self.done_day is not None else today
        return max(0, (end - self.due_day).days)


def make_promise(row: Any, tz: ZoneInfo) -> Promise:
    """A Promise from a callbacks row (id, client_id, due_at, status, done_at)."""
    done_at = row.done_at if row.status == "done" else None
    return Promise(
        id=row.id,
        client_id=row.client_id,
        due_at=row.due_at,
        status=row.status,
        done_at=done_at,
        due_day=row.due_at.astimezone(tz).date(),
        done_day=done_at.astimezone(tz).date() if done_at is not None else None,
    )


# Talking points that already read as an instruction are used as they are.
_IMPERATIVES = frozenset(
    {
        "arrange", "ask", "book", "bring", "call", "check", "confirm", "congratulate", "discuss",
        "find", "follow", "get", "introduce", "invite", "learn", "let", "mention", "offer",
        "pitch", "propose", "remind", "review", "say", "schedule", "see", "send", "share",
        "show", "suggest", "talk", "tell", "thank", "update", "wish",
    }
)  # fmt: skip
_BULLET = re.compile(r"^\s*(?:[-*•·\u2013\u2014>]+|\d+[.)])\s*")  # bullets, "1." or "1)"
_NOTE_CHARS = 80
_POINT_CHARS = 100


def _clip(text: str, limit: int) -> str:
    """One line of ``text`` (spaces collapsed), cut at a word boundary to ``limit`` chars."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut[limit // 2 :]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,;:.-\u2013\u2014") + "…"


def _how_long(days: int) -> str:
    if days < 14:
        return f"{days} days"
    if days < 60:
        return f"{days // 7} weeks"
    if days < 365:
        return f"{days // 30} months"
    years, rest = divmod(days, 365)
    amount = "a year" if years == 1 else f"{years} years"
    return amount if rest < 30 else f"over {amount}"


def _since(days_silent: int | None, company: str | None) -> str:
    who = f" with {_clip(company, 60)}" if company and company.strip() else ""
    if days_silent is None:
        return f"You haven't spoken{who} yet."
    if days_silent <= 0:
        return f"You spoke{who} today."
    if days_silent == 1:
        return f"You spoke{who} yesterday."
    return f"It's been {_how_long(days_silent)} since you spoke{who}."


def _first_point(talking_points: str | None) -> str | None:
    for line in (talking_points or "").splitlines():
        line = _BULLET.sub("", line).strip()
        if line:
            return line
    return None


def _ask(point: str) -> str:
    point = _clip(point, _POINT_CHARS)
    if point[-1] in "?!…":
        return point[0].upper() + point[1:]
    point = point.rstrip(".;:,")
    first = point.split(maxsplit=1)[0].casefold().strip(",:;")
    if first in _IMPERATIVES:
        return point[0].upper() + point[1:] + "."
    return f"Bring up: {point}."


def opener(
    *,
    days_silent: int | None,
    last_note: str | None,
    talking_points: str | None,
    company: str | None,
    prompts: Sequence[str],
    key: str = "",
) -> str:
    """A short suggested opener for calling a client who has gone quiet.

    Three parts, each only when known: how long it has been (and with which company); what was
    said last time (the latest call note, clipped); and something to say now: the client's first
    talking point, or else one of the rep's prompts, picked by ``key`` (the client's id) so a
    client keeps the same one from day to day while different clients get different ones.

    >>> opener(days_silent=210, last_note="wants the spring catalogue.", company=None,
    ...        talking_points="- ask how the new warehouse is going", prompts=["Hi?"])
    "It's been 7 months since you spoke. Last time: “wants the spring catalogue”. Ask how the new warehouse is going."
    """  # noqa: E501
    parts = [_since(days_silent, company)]
    note = _clip(last_note, _NOTE_CHARS) if last_note and last_note.strip() else ""
    if note:
        note = note.strip("\"'“”\u2018\u2019 ")
        if note and note[-1] in "?!…":
            parts.append(f"Last time: “{note}”")
        elif note:
            parts.append(f"Last time: “{note.rstrip('.;:,')}”.")
    point = _first_point(talking_points)
    if point is not None:
        parts.append(_ask(point))
    else:
        usable = [p for p in prompts if p and p.strip()] or list(DEFAULT_PROMPTS)
        parts.append(usable[zlib.crc32(key.encode()) % len(usable)].strip())
    return " ".join(parts)


# --- Reading the rep's rows ------------------------------------------------------------------

_CLIENT_COLUMNS = (
    clients.c.id,
    clients.c.name,
    clients.c.phone,
    clients.c.company,
    clients.c.tags,
    clients.c.cadence_days,
    clients.c.created_at,
    clients.c.attempts_since_reached,
    clients.c.last_touch_at,
    clients.c.last_reached_at,
)


def _active_clients(session: Session, user_id: str) -> list[Any]:
    """Every active (not archived) client of the rep, with what the figures need."""
    return session.execute(
        sa.select(*_CLIENT_COLUMNS).where(
            clients.c.user_id == user_id, clients.c.archived_at.is_(None)
        )
    ).all()


def client_ref(row: Any) -> dict[str, Any]:
    """The contract's ``client_ref``: enough to show a client and call it from a list."""
    return {
        "id": row.id,
        "name": row.name,
        "phone": row.phone,
        "company": row.company,
        "tags": list(row.tags or []),
        "attempts_since_reached": row.attempts_since_reached,
        "last_touch_at": row.last_touch_at,
        "last_reached_at": row.last_reached_at,
    }


def day_start(day: date, tz: ZoneInfo) -> datetime:
    """The first instant of the local ``day`` (after the gap, where midnight is skipped)."""
    return scheduling.at_local(day, _MIDNIGHT, tz)


Span = tuple[datetime, datetime, str | None]  # [start, end) and an outcome, or None for all


def count_touches(session: Session, user_id: str, spans: Sequence[Span]) -> list[int]:
    """The rep's touches in each [start, end) span (of one outcome, or all), in one statement.

    Each span is its own count over the (user_id, happened_at) index, a range scan of that span
    alone. Grouping by local day in SQL instead would need the zone's rules in the database
    (SQLite has none); counting between the edges that scheduling computes keeps one definition
    of a local day, DST included.
    """
    if not spans:
        return []
    columns = []
    for n, (start, end, outcome) in enumerate(spans):
        count = (
            sa.select(sa.func.count())
            .select_from(touches)
            .where(
                touches.c.user_id == user_id,
                touches.c.happened_at >= start,
                touches.c.happened_at < end,
            )
        )
        if outcome is not None:
            count = count.where(touches.c.outcome == outcome)
        columns.append(count.scalar_subquery().label(f"n{n}"))
    return list(session.execute(sa.select(*columns)).one())


class DayCounts:
    """Calls per local day, read in batches as the streak walks back (a callable for ``streak``).

    Most streaks end within the first batch; a long one costs one more statement per batch, and
    batches double in size, so even a two-year streak takes a handful of statements.
    """

    def __init__(self, session: Session, user_id: str, tz: ZoneInfo) -> None:
        self.session = session
        self.user_id = user_id
        self.tz = tz
        self.counts: dict[date, int] = {}
        self.oldest: date | None = None

    def load(self, first: date, last: date, extra: Sequence[Span] = ()) -> list[int]:
        """Read the calls of each day ``first``..``last``; return the counts of ``extra`` spans,
        read in the same statement."""
        days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
        edges = [day_start(day, self.tz) for day in days]
        edges.append(day_start(last + timedelta(days=1), self.tz))
        spans: list[Span] = [(a, b, None) for a, b in itertools.pairwise(edges)]
        found = count_touches(self.session, self.user_id, [*spans, *extra])
        self.counts.update(zip(days, found, strict=False))
        self.oldest = first if self.oldest is None else min(self.oldest, first)
        return found[len(days) :]

    def __call__(self, day: date) -> int:
        if self.oldest is None or day < self.oldest:
            last = self.oldest - timedelta(days=1) if self.oldest is not None else day
            size = max(STREAK_BATCH, len(self.counts))
            self.load(min(day, last - timedelta(days=size - 1)), last)
        return self.counts.get(day, 0)


_PROMISE_COLUMNS = (
    callbacks.c.id,
    callbacks.c.client_id,
    callbacks.c.due_at,
    callbacks.c.status,
    callbacks.c.done_at,
)


def _promises(
    session: Session,
    settings: Settings,
    first: date,
    last: date,
    active: Mapping[str, Any],
    *,
    kept_today: date | None = None,
) -> list[Promise]:
    """The non-cancelled callbacks of active clients due on local days ``first``..``last``.

    With ``kept_today``, also those due later that a call kept on that day (kept early), for
    today's "promises kept". Both read the (user_id, status, due_at) index.
    """
    tz = settings.tz
    mine = (callbacks.c.user_id == settings.id, callbacks.c.status.in_(("open", "done")))
    due = sa.select(*_PROMISE_COLUMNS).where(
        *mine,
        callbacks.c.due_at >= day_start(first, tz),
        callbacks.c.due_at < day_start(last + timedelta(days=1), tz),
    )
    if kept_today is not None:
        early = sa.select(*_PROMISE_COLUMNS).where(
            callbacks.c.user_id == settings.id,
            callbacks.c.status == "done",
            callbacks.c.due_at >= day_start(last + timedelta(days=1), tz),
            callbacks.c.done_at >= day_start(kept_today, tz),
            callbacks.c.done_at < day_start(kept_today + timedelta(days=1), tz),
        )
        due = sa.union_all(due, early)
    return [make_promise(row, tz) for row in session.execute(due) if row.client_id in active]


# --- The figures -----------------------------------------------------------------------------


def coverage(
    rows: Iterable[Any], tiers: Mapping[str, int], today: date, tz: ZoneInfo
) -> dict[str, Any]:
    """Per tier: how many active clients were reached within their rhythm, and who is slipping.

    A client's rhythm is its own ``cadence_days`` when set, else its tier's. Within means reached
    on a local day no more than that many days before today (due today is not yet slipping).
    """
    tier_of: dict[tuple[str, ...], str | None] = {}
    since: dict[int, datetime] = {}  # cadence -> first instant that is still within it
    found = {name: {"clients": 0, "within": 0, "slipping": []} for name in TIER_NAMES}
    untiered = 0
    for row in rows:
        tags = tuple(row.tags or ())
        if tags not in tier_of:
            tier_of[tags] = client_tier(tags, tiers)
        tier = tier_of[tags]
        if tier is None:
            untiered += 1
            continue
        cadence = row.cadence_days if row.cadence_days is not None else tiers[tier]
        entry = found[tier]
        entry["clients"] += 1
        if cadence not in since:
            since[cadence] = day_start(today - timedelta(days=cadence), tz)
        reached = row.last_reached_at
        if reached is not None and reached >= since[cadence]:
            entry["within"] += 1
            continue
        if reached is None:
            days_since = None
            anchor = (today - row.created_at.astimezone(tz).date()).days
        else:
            days_since = anchor = (today - reached.astimezone(tz).date()).days
        entry["slipping"].append((row, days_since, max(0, anchor - cadence)))
    result = []
    for name in TIER_NAMES:
        entry = found[name]
        # Never reached first, then the most overdue; ties by name.
        entry["slipping"].sort(
            key=lambda s: (s[1] is not None, -s[2], (s[0].name or "").casefold(), s[0].id)
        )
        result.append(
            {
                "tier": name,
                "cadence_days": tiers[name],
                "clients": entry["clients"],
                "within": entry["within"],
                "share": share(entry["within"], entry["clients"]),
                "slipping": [
                    {"client": client_ref(row), "days_since_reached": days, "days_over": over}
                    for row, days, over in entry["slipping"][:SLIPPING_LIMIT]
                ],
            }
        )
    return {"tiers": result, "untiered": untiered}


def persistence(rows: Iterable[Any]) -> list[dict[str, Any]]:
    """Clients with ``PERSISTENCE_MIN`` or more unanswered calls since last reached.

    Most attempts first; among equals, the one tried least recently first (it is next to try).
    """
    listed = [row for row in rows if row.attempts_since_reached >= PERSISTENCE_MIN]
    listed.sort(key=lambda r: (-r.attempts_since_reached, r.last_touch_at or _EPOCH, r.id))
    return [
        {"client": client_ref(row), "attempts": row.attempts_since_reached}
        for row in listed[:PERSISTENCE_LIMIT]
    ]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _silence_key(row: Any) -> tuple[int, datetime, str]:
    # Never touched first (the longest-known first), then the oldest last touch.
    if row.last_touch_at is None:
        return (0, row.created_at, row.id)
    return (1, row.last_touch_at, row.id)


def inactive(
    session: Session, rows: Iterable[Any], settings: Settings, today: date
) -> list[dict[str, Any]]:
    """The clients silent the longest, each with an opener from what is known about them."""
    quiet = heapq.nsmallest(INACTIVE_LIMIT, rows, key=_silence_key)
    if not quiet:
        return []
    last_note = (
        sa.select(touches.c.note)
        .where(
            touches.c.client_id == clients.c.id,
            touches.c.note.is_not(None),
            touches.c.note != "",
        )
        .order_by(touches.c.happened_at.desc())
        .limit(1)
        .scalar_subquery()
    )
    known = {
        row.id: row
        for row in session.execute(
            sa.select(clients.c.id, clients.c.talking_points, last_note.label("note")).where(
                clients.c.user_id == settings.id, clients.c.id.in_([r.id for r in quiet])
            )
        )
    }
    result = []
    for row in quiet:
        days = (
            None
            if row.last_touch_at is None
            else (today - row.last_touch_at.astimezone(settings.tz).date()).days
        )
        extra = known.get(row.id)
        result.append(
            {
                "client": client_ref(row),
                "days_silent": days,
                "opener": opener(
                    days_silent=days,
                    last_note=extra.note if extra else None,
                    talking_points=extra.talking_points if extra else None,
                    company=row.company,
                    prompts=settings.prompts,
                    key=row.id,
                ),
            }
        )
    return result


def promises_figure(promises: Iterable[Promise], today: date) -> dict[str, Any]:
    """Kept share over the last ``WINDOW_DAYS`` days, and the broken promises to put right."""
    first = today - timedelta(days=WINDOW_DAYS)
    judged = [p for p in promises if first <= p.due_day <= today and p.counts(today)]
    kept = sum(1 for p in judged if p.kept)
    broken = [p for p in judged if p.broken(today)]
    # Still open first (they can still be put right with a call), then the most recent.
    broken.sort(key=lambda p: p.id)
    broken.sort(key=lambda p: p.due_at, reverse=True)
    broken.sort(key=lambda p: p.status != "open")
    return {
        "window_days": WINDOW_DAYS,
        "due": len(judged),
        "kept": kept,
        "share": share(kept, len(judged)),
        "broken": broken[:BROKEN_LIMIT],
    }


def _week(
    start: date,
    today: date,
    calls: int,
    reached: int,
    promises: Iterable[Promise],
    coverage_shares: dict[str, float | None],
) -> dict[str, Any]:
    """The ``week_summary`` shape for the week starting on Monday ``start``."""
    end = start + timedelta(days=6)
    judged = [p for p in promises if start <= p.due_day <= end and p.counts(today)]
    kept = sum(1 for p in judged if p.kept)
    return {
        "start": start,
        "end": end,
        "calls": calls,
        "reached": reached,
        "reach_rate": share(reached, calls),
        "promises_due": len(judged),
        "promises_kept": kept,
        "promises_share": share(kept, len(judged)),
        "coverage": dict(coverage_shares),
    }


def _coverage_shares(cover: dict[str, Any]) -> dict[str, float | None]:
    return {entry["tier"]: entry["share"] for entry in cover["tiers"]}


def monday_of(day: date) -> date:
    """The Monday that starts ``day``'s week."""
    return day - timedelta(days=day.weekday())


def stats_for(session: Session, user: Any, now: datetime | None = None) -> dict[str, Any]:
    """``GET /stats`` for ``user`` (the request's CurrentUser) at ``now`` (default: the clock)."""
    settings = settings_of(user)
    tz = settings.tz
    now = now or utcnow()
    today = scheduling.local_today(now, tz)
    this_monday = monday_of(today)
    last_monday = this_monday - timedelta(days=7)
    tomorrow = day_start(today + timedelta(days=1), tz)

    rows = _active_clients(session, settings.id)
    active = {row.id: row for row in rows}

    # One statement: the calls of each of the last STREAK_BATCH days, and reached counts for
    # today, this week and last week.
    days = DayCounts(session, settings.id, tz)
    reached_today, reached_this, reached_last = days.load(
        today - timedelta(days=STREAK_BATCH - 1),
        today,
        extra=[
            (day_start(today, tz), tomorrow, "reached"),
            (day_start(this_monday, tz), tomorrow, "reached"),
            (day_start(last_monday, tz), day_start(this_monday, tz), "reached"),
        ],
    )

    def calls_between(first: date, last: date) -> int:
        return sum(days(first + timedelta(days=n)) for n in range((last - first).days + 1))

    streak_days, met_today = streak(days, today, settings.daily_goal, settings.streak_weekends)

    promises = _promises(
        session,
        settings,
        min(today - timedelta(days=WINDOW_DAYS), last_monday),
        today,
        active,
        kept_today=today,
    )
    kept_today = sum(1 for p in promises if p.done_day == today and p.kept)
    figure = promises_figure(promises, today)
    figure["broken"] = [
        {
            "callback_id": p.id,
            "client": client_ref(active[p.client_id]),
            "due_at": p.due_at,
            "status": p.status,
            "done_at": p.done_at,
            "days_late": p.days_late(today),
        }
        for p in figure["broken"]
    ]

    cover = coverage(rows, settings.tiers, today, tz)
    shares = _coverage_shares(cover)
    return {
        "date": today,
        "today": {
            "calls": days(today),
            "reached": reached_today,
            "promises_kept": kept_today,
            "goal": settings.daily_goal,
        },
        "streak": {
            "days": streak_days,
            "goal": settings.daily_goal,
            "weekends": settings.streak_weekends,
            "met_today": met_today,
        },
        "coverage": cover,
        "promises": figure,
        "persistence": persistence(rows),
        "inactive": inactive(session, rows, settings, today),
        "weeks": {
            "this": _week(
                this_monday,
                today,
                calls_between(this_monday, today),
                reached_this,
                promises,
                shares,
            ),
            "last": _week(
                last_monday,
                today,
                calls_between(last_monday, this_monday - timedelta(days=1)),
                reached_last,
                promises,
                shares,
            ),
        },
    }


def week_summary(
    session: Session, user_id: str, week_start: date, *, now: datetime | None = None
) -> dict[str, Any]:
    """The ``week_summary`` of the rep's week starting on Monday ``week_start``.

    For the Monday push (the dispatcher passes last week's Monday) and anything else that needs
    one week without the rest of the stats. Calls and promises are those of that week up to
    today (a week in the future is empty); coverage is the current snapshot. Raises ValueError
    when ``week_start`` is not a Monday and LookupError when the rep does not exist.
    """
    if week_start.weekday() != 0:
        raise ValueError(f"week_start must be a Monday, got {week_start} ({week_start:%A})")
    settings = load_settings(session, user_id)
    tz = settings.tz
    today = scheduling.local_today(now or utcnow(), tz)
    last = min(week_start + timedelta(days=6), today)
    rows = _active_clients(session, user_id)
    shares = _coverage_shares(coverage(rows, settings.tiers, today, tz))
    if last < week_start:
        return _week(week_start, today, 0, 0, [], shares)
    span = (day_start(week_start, tz), day_start(last + timedelta(days=1), tz))
    calls, reached = count_touches(session, user_id, [(*span, None), (*span, "reached")])
    active = {row.id: row for row in rows}
    promises = _promises(session, settings, week_start, last, active)
    return _week(week_start, today, calls, reached, promises, shares)
