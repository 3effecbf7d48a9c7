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

The database does the counting, so the cost does not grow with the log: touches are counted per
day over the (user_id, happened_at) index, clients are grouped by tag text, promises by due day
and done day, and only the rows a list shows come back (ten slipping per tier, twenty broken
promises...). A rep with 2,000 clients and 50,000 touches takes about a dozen small statements
(bench/stats.py). They are built once per shape and kept (see ``_statement``).

The shape of every answer is the issue 6 contract (``StatsSchema`` in schemas.py). The rules
that need no database (tiers, the streak walk, day edges, the opener) are plain functions,
unit-tested in tests/unit/test_stats_rules.py; the figures in test_stats_figures.py.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .. import scheduling
from ..db import UTCDateTime
from ..models import callback_status_is, callbacks, clients, touches, users, utcnow
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
        if any(ch.isalnum() for ch in line):  # a line of only "." or "-" says nothing
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
    if any(ch.isalnum() for ch in note):
        note = note.strip("\"'“”\u2018\u2019 ")
        if note and note[-1] in "?!…":
            parts.append(f"Last time: “{note}”")
        elif note:
            parts.append(f"Last time: “{note.rstrip('.;:,')}”.")
    point = _first_point(talking_points)
    if point is not None:
        parts.append(_ask(point))
    else:
        usable = [" ".join(p.split()) for p in prompts if p and p.strip()] or DEFAULT_PROMPTS
        parts.append(usable[zlib.crc32(key.encode()) % len(usable)])
    return " ".join(parts)


def monday_of(day: date) -> date:
    """The Monday that starts ``day``'s week (weeks run Monday to Sunday)."""
    return day - timedelta(days=day.weekday())


# --- Statements ------------------------------------------------------------------------------
#
# The statements are built once per shape, with bound parameters, and kept: building a select
# with a hundred terms in SQLAlchemy costs more than running it, and a kept statement object
# also keeps its cache key, so it goes straight to SQLAlchemy's compiled cache. Shapes depend
# only on sizes that repeat (days in a batch, rhythms per tier), so the store stays small.

_INSTANT = UTCDateTime()
_STATEMENTS: dict[tuple[Any, ...], Any] = {}


def _statement(key: tuple[Any, ...], build: Callable[[], Any]) -> Any:
    stmt = _STATEMENTS.get(key)
    if stmt is None:
        stmt = _STATEMENTS[key] = build()
    return stmt


def _p(name: str, type_: Any = None, *, expanding: bool = False) -> sa.BindParameter:
    return sa.bindparam(name, type_=type_, expanding=expanding)


_UID = _p("uid")


def _instant(name: str) -> sa.BindParameter:
    return _p(name, _INSTANT)


def _how_many(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
    """How many rows meet ``condition`` (0, not null, when there are none)."""
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)


def _bucket(
    column: sa.ColumnElement, edges: Sequence[Any], lo: int, hi: int, leaf: Callable[[int], Any]
) -> Any:
    """``leaf(i)`` for the ``i`` in [lo, hi] with ``edges[i] <= column < edges[i + 1]`` (``-1``:
    before ``edges[0]``), as nested CASEs that halve the range: about 6 comparisons a row for
    a month of days, where a flat CASE would make up to 40."""
    if lo == hi:
        return leaf(lo)
    mid = (lo + hi + 1) // 2
    return sa.case(
        (column < edges[mid], _bucket(column, edges, lo, mid - 1, leaf)),
        else_=_bucket(column, edges, mid, hi, leaf),
    )


# --- Local days and touch counts -------------------------------------------------------------


def day_start(day: date, tz: ZoneInfo) -> datetime:
    """The first instant of the local ``day`` (after the gap, where midnight is skipped)."""
    return scheduling.at_local(day, _MIDNIGHT, tz)


def day_edges(first: date, last: date, tz: ZoneInfo) -> list[datetime]:
    """The first instant of each local day ``first``..``last``, then the end of ``last``."""
    return [day_start(first + timedelta(days=n), tz) for n in range((last - first).days + 2)]


# Touches in [edges[i], edges[j]), of one outcome or (None) all of them.
Span = tuple[int, int, str | None]


def _build_counts(spans: tuple[Span, ...]) -> sa.Select:
    columns = []
    for n, (i, j, outcome) in enumerate(spans):
        count = (
            sa.select(sa.func.count())
            .select_from(touches)
            .where(
                touches.c.user_id == _UID,
                touches.c.happened_at >= _instant(f"e{i}"),
                touches.c.happened_at < _instant(f"e{j}"),
            )
        )
        if outcome is not None:
            count = count.where(touches.c.outcome == outcome)
        columns.append(count.scalar_subquery().label(f"n{n}"))
    return sa.select(*columns)


def _build_days(days: int) -> sa.Select:
    """The rep's touches on each of ``days`` local days (edges ``e0``..``e{days}``), by day."""
    edges = [_instant(f"e{n}") for n in range(days + 1)]
    happened = touches.c.happened_at
    return (
        sa.select(_bucket(happened, edges, 0, days - 1, sa.literal).label("day"), sa.func.count())
        .where(touches.c.user_id == _UID, happened >= edges[0], happened < edges[-1])
        .group_by("day")
    )


def count_touches(
    session: Session, user_id: str, edges: Sequence[datetime], spans: Sequence[Span]
) -> list[int]:
    """The rep's touches in each span between two of the ``edges``, in one statement.

    Each span is its own count over the (user_id, happened_at) index, a range scan of that span
    alone. Grouping by local day in SQL instead would need the zone's rules in the database
    (SQLite has none); counting between the edges that scheduling computes keeps one definition
    of a local day, DST included. Spans share their edges, so each instant is sent once.
    """
    if not spans:
        return []
    shape = tuple(spans)
    stmt = _statement(("counts", shape), lambda: _build_counts(shape))
    params: dict[str, Any] = {"uid": user_id}
    params.update({f"e{n}": edge for n, edge in enumerate(edges)})
    return list(session.execute(stmt, params).one())


class DayCounts:
    """Calls per local day, read in batches as the streak walks back (a callable for ``streak``).

    Most streaks end inside the first batch; a longer one costs one more statement per batch,
    and batches double (up to ``4 * STREAK_BATCH`` days), so two years take a handful.
    """

    def __init__(self, session: Session, user_id: str, tz: ZoneInfo) -> None:
        self.session = session
        self.user_id = user_id
        self.tz = tz
        self.counts: dict[date, int] = {}
        self.oldest: date | None = None

    def load(
        self, first: date, last: date, extra: Sequence[tuple[date, date, str | None]] = ()
    ) -> list[int]:
        """Read the calls of each day ``first``..``last``; return the counts of the ``extra``
        ranges of days (first and last day, outcome), which must lie inside."""
        edges = day_edges(first, last, self.tz)
        days = len(edges) - 1
        spans: list[Span] = []
        for first_day, last_day, outcome in extra:
            if not first <= first_day <= last_day <= last:
                raise ValueError(f"{first_day}..{last_day} is not inside {first}..{last}")
            spans.append(((first_day - first).days, (last_day - first).days + 1, outcome))
        if self.session.get_bind().dialect.name == "postgresql":
            # A subplan per day costs PostgreSQL far more than SQLite (a two-year streak took
            # 80 ms): one scan of the days' index range, grouped by day, instead.
            per_day = [0] * days
            stmt = _statement(("days", days), lambda: _build_days(days))
            params = {"uid": self.user_id, **{f"e{n}": e for n, e in enumerate(edges)}}
            for day, calls in self.session.execute(stmt, params):
                per_day[day] = calls
            found = count_touches(self.session, self.user_id, edges, spans)
        else:
            day_spans: list[Span] = [(n, n + 1, None) for n in range(days)]
            both = count_touches(self.session, self.user_id, edges, [*day_spans, *spans])
            per_day, found = both[:days], both[days:]
        for n, calls in enumerate(per_day):
            self.counts[first + timedelta(days=n)] = calls
        self.oldest = first if self.oldest is None else min(self.oldest, first)
        return found

    def __call__(self, day: date) -> int:
        if self.oldest is None or day < self.oldest:
            last = self.oldest - timedelta(days=1) if self.oldest is not None else day
            size = min(max(STREAK_BATCH, len(self.counts)), 4 * STREAK_BATCH)
            self.load(min(day, last - timedelta(days=size - 1)), last)
        return self.counts.get(day, 0)

    def total(self, first: date, last: date) -> int:
        """Calls on the days ``first``..``last``."""
        return sum(self(first + timedelta(days=n)) for n in range((last - first).days + 1))


# --- Clients ---------------------------------------------------------------------------------

# Tags as the JSON text stored: the tier of each distinct text is worked out once, in Python
# (scheduling's grammar), and the database is then asked about those texts.
_TAGS_TEXT = sa.cast(clients.c.tags, sa.Text)
_ACTIVE = (clients.c.user_id == _UID, clients.c.archived_at.is_(None))
_REF_COLUMNS = (
    clients.c.id,
    clients.c.name,
    clients.c.phone,
    clients.c.company,
    clients.c.tags,
    clients.c.attempts_since_reached,
    clients.c.last_touch_at,
    clients.c.last_reached_at,
)


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


_REFS = sa.select(*_REF_COLUMNS).where(
    clients.c.user_id == _UID, clients.c.id.in_(_p("ids", expanding=True))
)


def _refs(session: Session, user_id: str, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    ids = sorted(set(ids))
    if not ids:
        return {}
    rows = session.execute(_REFS, {"uid": user_id, "ids": ids})
    return {row.id: client_ref(row) for row in rows}


def _build_groups() -> sa.Select:
    """Clients that follow their tier's rhythm, by tag text: how many, and how many of them
    were reached since the start of tier A's, B's and C's rhythm (``since0``..``since2``)."""
    return (
        sa.select(
            _TAGS_TEXT.label("tags"),
            sa.func.count().label("n"),
            *(
                _how_many(clients.c.last_reached_at >= _instant(f"since{n}"))
                for n in range(len(TIER_NAMES))
            ),
        )
        .where(*_ACTIVE, clients.c.cadence_days.is_(None))
        .group_by(_TAGS_TEXT)
    )


# Clients with a rhythm of their own (per-client cadence_days): few, so read one by one.
_OWN_RHYTHM = sa.select(
    clients.c.id,
    _TAGS_TEXT.label("tags"),
    clients.c.cadence_days,
    clients.c.created_at,
    clients.c.last_reached_at,
).where(*_ACTIVE, clients.c.cadence_days.is_not(None))


def _build_slipping(tiers: int) -> sa.CompoundSelect | sa.Select:
    """The ``SLIPPING_LIMIT`` most overdue clients following each tier's rhythm: part ``n``
    takes the clients whose tags are ``texts{n}``, not reached since ``since{n}``."""
    parts = []
    for n in range(tiers):
        q = (
            sa.select(clients.c.id, clients.c.created_at, clients.c.last_reached_at)
            .where(
                *_ACTIVE,
                clients.c.cadence_days.is_(None),
                _TAGS_TEXT.in_(_p(f"texts{n}", expanding=True)),
                sa.or_(
                    clients.c.last_reached_at.is_(None),
                    clients.c.last_reached_at < _instant(f"since{n}"),
                ),
            )
            # Never reached first (the longest known first), then reached longest ago.
            .order_by(
                clients.c.last_reached_at.is_not(None),
                sa.func.coalesce(clients.c.last_reached_at, clients.c.created_at),
                clients.c.id,
            )
            .limit(SLIPPING_LIMIT)
            .subquery(f"t{n}")
        )
        parts.append(
            sa.select(sa.literal(n).label("k"), q.c.id, q.c.created_at, q.c.last_reached_at)
        )
    return sa.union_all(*parts) if len(parts) > 1 else parts[0]


# A slipping client, as a tuple that sorts as the list is shown: never reached first, then the
# most days over, then the longest ago, then by id.
_Slip = tuple[bool, int, int | None, datetime, str]


def _slip(
    today: date,
    tz: ZoneInfo,
    cadence: int,
    client_id: str,
    created_at: datetime,
    reached: datetime | None,
) -> _Slip:
    if reached is None:
        # Never reached: overdue since the rhythm first came round after the client was added.
        over = max(0, (today - created_at.astimezone(tz).date()).days - cadence)
        return (False, -over, None, created_at, client_id)
    days = (today - reached.astimezone(tz).date()).days
    return (True, -(days - cadence), days, reached, client_id)


def coverage(
    session: Session, settings: Settings, today: date, *, slipping: bool = True
) -> dict[str, Any]:
    """Per tier: how many active clients were reached within their rhythm, and who is slipping.

    A client's rhythm is its own ``cadence_days`` when set, else its tier's. Within means reached
    on a local day at most that many days before today (due today is not slipping yet), i.e. at
    or after the first instant of local day ``today - rhythm``. Slipping entries carry the
    client id in ``client``; ``stats_for`` swaps in the client_ref.

    No statement returns a row per client, except for the (few) clients with a rhythm of their
    own: the others are counted by tag text in SQL, and only each tier's ten most overdue come
    back. Within one rhythm, the order by last reached is the order by days over, so those ten
    and the own-rhythm clients hold the tier's first ten.
    """
    tz = settings.tz
    starts: dict[int, datetime] = {}

    def since(cadence: int) -> datetime:
        if cadence not in starts:
            starts[cadence] = day_start(today - timedelta(days=cadence), tz)
        return starts[cadence]

    tier_of: dict[str | None, str | None] = {}

    def tier(text: str | None) -> str | None:
        if text not in tier_of:
            tier_of[text] = client_tier(json.loads(text) if text else [], settings.tiers)
        return tier_of[text]

    counts = dict.fromkeys(TIER_NAMES, 0)
    within = dict.fromkeys(TIER_NAMES, 0)
    texts: dict[str, list[str]] = {name: [] for name in TIER_NAMES}
    found: dict[str, list[_Slip]] = {name: [] for name in TIER_NAMES}
    untiered = 0

    params: dict[str, Any] = {"uid": settings.id}
    for n, name in enumerate(TIER_NAMES):
        params[f"since{n}"] = since(settings.tiers[name])
    for text, n, *reached in session.execute(_statement(("groups",), _build_groups), params):
        name = tier(text)
        if name is None:
            untiered += n
            continue
        counts[name] += n
        within[name] += reached[TIER_NAMES.index(name)]
        texts[name].append(text)

    for row in session.execute(_OWN_RHYTHM, {"uid": settings.id}):
        name = tier(row.tags)
        if name is None:
            untiered += 1
            continue
        counts[name] += 1
        if row.last_reached_at is not None and row.last_reached_at >= since(row.cadence_days):
            within[name] += 1
        elif slipping:
            found[name].append(
                _slip(today, tz, row.cadence_days, row.id, row.created_at, row.last_reached_at)
            )

    present = [name for name in TIER_NAMES if texts[name]]
    if slipping and present:
        params = {"uid": settings.id}
        for n, name in enumerate(present):
            params[f"texts{n}"] = texts[name]
            params[f"since{n}"] = since(settings.tiers[name])
        stmt = _statement(("slipping", len(present)), lambda: _build_slipping(len(present)))
        for k, client_id, created_at, reached in session.execute(stmt, params):
            name = present[k]
            found[name].append(
                _slip(today, tz, settings.tiers[name], client_id, created_at, reached)
            )

    tiers = []
    for name in TIER_NAMES:
        entries = sorted(found[name])[:SLIPPING_LIMIT]
        tiers.append(
            {
                "tier": name,
                "cadence_days": settings.tiers[name],
                "clients": counts[name],
                "within": within[name],
                "share": share(within[name], counts[name]),
                "slipping": [
                    {"client": client_id, "days_since_reached": days, "days_over": -minus_over}
                    for _reached, minus_over, days, _at, client_id in entries
                ],
            }
        )
    return {"tiers": tiers, "untiered": untiered}


_PERSISTENCE = (
    sa.select(*_REF_COLUMNS)
    .where(*_ACTIVE, clients.c.attempts_since_reached >= PERSISTENCE_MIN)
    .order_by(clients.c.attempts_since_reached.desc(), clients.c.last_touch_at, clients.c.id)
    .limit(PERSISTENCE_LIMIT)
)


def persistence(session: Session, user_id: str) -> list[dict[str, Any]]:
    """Clients with ``PERSISTENCE_MIN`` or more unanswered calls since they were last reached.

    Most attempts first; among equals, the one tried least recently first (it is next to try).
    """
    rows = session.execute(_PERSISTENCE, {"uid": user_id})
    return [{"client": client_ref(row), "attempts": row.attempts_since_reached} for row in rows]


def _build_inactive() -> sa.Select:
    quiet = (
        sa.select(*_REF_COLUMNS, clients.c.talking_points, clients.c.created_at)
        .where(*_ACTIVE)
        .order_by(
            clients.c.last_touch_at.is_not(None),
            sa.func.coalesce(clients.c.last_touch_at, clients.c.created_at),
            clients.c.id,
        )
        .limit(INACTIVE_LIMIT)
        .subquery()
    )
    # The latest note, looked up only for those ten (index: client_id, happened_at).
    note = (
        sa.select(touches.c.note)
        .where(touches.c.client_id == quiet.c.id, touches.c.note.is_not(None), touches.c.note != "")
        .order_by(touches.c.happened_at.desc())
        .limit(1)
        .scalar_subquery()
    )
    return sa.select(*quiet.c, note.label("note")).order_by(
        quiet.c.last_touch_at.is_not(None),
        sa.func.coalesce(quiet.c.last_touch_at, quiet.c.created_at),
        quiet.c.id,
    )


_INACTIVE = _build_inactive()


def inactive(session: Session, settings: Settings, today: date) -> list[dict[str, Any]]:
    """The clients silent the longest (never touched first, the longest-known of them first),
    each with an opener from its latest call note, talking points and company."""
    result = []
    for row in session.execute(_INACTIVE, {"uid": settings.id}):
        days = (
            None
            if row.last_touch_at is None
            else (today - row.last_touch_at.astimezone(settings.tz).date()).days
        )
        result.append(
            {
                "client": client_ref(row),
                "days_silent": days,
                "opener": opener(
                    days_silent=days,
                    last_note=row.note,
                    talking_points=row.talking_points,
                    company=row.company,
                    prompts=settings.prompts,
                    key=row.id,
                ),
            }
        )
    return result


# --- Promises --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PromiseCounts:
    """Promises judged in a range of local days: how many were due, how many were kept."""

    due: int
    kept: int


_PROMISE_COLUMNS = (
    callbacks.c.id,
    callbacks.c.client_id,
    callbacks.c.due_at,
    callbacks.c.status,
    callbacks.c.done_at,
)
_ARCHIVED = sa.select(clients.c.id).where(
    clients.c.user_id == _UID, clients.c.archived_at.is_not(None)
)
_MINE = (
    callbacks.c.user_id == _UID,
    callbacks.c.status.in_(("open", "done")),
    callbacks.c.client_id.not_in(_ARCHIVED),
)


def _build_judged(days: int) -> sa.Select:
    """Promises due on ``days`` local days (edges ``e0``..``e{days}``), grouped by due day,
    done day and status."""
    edges = [_instant(f"e{n}") for n in range(days + 1)]
    due, done = callbacks.c.due_at, callbacks.c.done_at

    def index(n: int) -> sa.BindParameter:
        return sa.literal(n)

    # The due day's number (0: the first day); the done day's (-1: before the first day,
    # ``days``: after the last, null: not done).
    done_day = sa.case((done.is_(None), sa.null()), else_=_bucket(done, edges, -1, days, index))
    return (
        sa.select(
            _bucket(due, edges, 0, days - 1, index).label("due_day"),
            done_day.label("done_day"),
            callbacks.c.status,
            sa.func.count(),
        )
        .where(*_MINE, due >= edges[0], due < edges[-1])
        .group_by("due_day", "done_day", callbacks.c.status)
    )


def _build_broken(days: int) -> sa.CompoundSelect:
    """Broken promises due on ``days`` local days before today (edges ``e0``..``e{days}``, the
    last being the start of today), newest first: those still open, and those kept late (done
    at or after the end of the due day). Each part reads the index in due order and stops at
    the limit."""
    edges = [_instant(f"e{n}") for n in range(days + 1)]
    due = callbacks.c.due_at
    due_day_end = _bucket(due, edges, 0, days - 1, lambda n: edges[n + 1])

    def newest(*where: sa.ColumnElement[bool]) -> sa.Subquery:
        return (
            sa.select(*_PROMISE_COLUMNS)
            .where(*_MINE, due >= edges[0], due < edges[-1], *where)
            .order_by(due.desc(), callbacks.c.id)
            .limit(BROKEN_LIMIT)
            .subquery()
        )

    still_open = newest(callback_status_is("open"))
    late = newest(callback_status_is("done"), callbacks.c.done_at >= due_day_end)
    return sa.union_all(sa.select(*still_open.c), sa.select(*late.c))


# Kept today: done today, and due today or later (a call before the due day keeps it early).
_KEPT_TODAY = sa.select(sa.func.count()).where(
    callbacks.c.user_id == _UID,
    callback_status_is("done"),
    callbacks.c.client_id.not_in(_ARCHIVED),
    callbacks.c.due_at >= _instant("today"),
    callbacks.c.done_at >= _instant("today"),
    callbacks.c.done_at < _instant("tomorrow"),
)


def _edge_params(first: date, last: date, tz: ZoneInfo) -> dict[str, datetime]:
    return {f"e{n}": edge for n, edge in enumerate(day_edges(first, last, tz))}


def promises(
    session: Session,
    settings: Settings,
    today: date,
    ranges: Mapping[str, tuple[date, date]],
) -> dict[str, PromiseCounts]:
    """How many of the rep's promises were due, and kept, in each named range of local days.

    A promise (a non-cancelled callback of an active client) is kept when a call fulfilled it
    on or before its local due date; broken when that date has passed without that (still
    open, or kept late). It is judged once its date has passed, or on its day once kept, so
    today's open ones are not counted yet, and neither is anything due after today.

    No zone rules are needed in SQL: the local day of an instant is found by comparing it with
    the day edges scheduling computes (a CASE that halves the days at each step). The database
    groups the promises by (due day, done day, status): a busy rep's thousand promises come
    back as a few dozen rows.
    """
    first = min(first_day for first_day, _last in ranges.values())
    last = min(max(last_day for _first, last_day in ranges.values()), today)
    due = dict.fromkeys(ranges, 0)
    kept = dict.fromkeys(ranges, 0)
    if first <= last:
        days = (last - first).days + 1
        stmt = _statement(("judged", days), lambda: _build_judged(days))
        params = {"uid": settings.id, **_edge_params(first, last, settings.tz)}
        for due_n, done_n, status, n in session.execute(stmt, params):
            due_day = first + timedelta(days=due_n)
            is_kept = status == "done" and done_n is not None and done_n <= due_n
            if due_day == today and not is_kept:
                continue  # not judged yet
            for name, (first_day, last_day) in ranges.items():
                if first_day <= due_day <= last_day:
                    due[name] += n
                    kept[name] += n if is_kept else 0
    return {name: PromiseCounts(due=due[name], kept=kept[name]) for name in ranges}


def broken_promises(
    session: Session, settings: Settings, today: date, since: date
) -> list[dict[str, Any]]:
    """The rep's broken promises due from ``since`` to yesterday: still open first (a call can
    still put them right), then those kept late; most recent first, ``BROKEN_LIMIT`` at most.
    ``client`` is the client's id (``stats_for`` swaps in the client_ref)."""
    tz = settings.tz
    if since >= today:
        return []
    days = (today - since).days
    stmt = _statement(("broken", days), lambda: _build_broken(days))
    params = {"uid": settings.id, **_edge_params(since, today - timedelta(days=1), tz)}
    rows = sorted(
        session.execute(stmt, params),
        key=lambda row: (row.status != "open", -row.due_at.timestamp(), row.id),
    )
    broken = []
    for row in rows[:BROKEN_LIMIT]:
        done_at = row.done_at if row.status == "done" else None
        end = done_at.astimezone(tz).date() if done_at is not None else today
        broken.append(
            {
                "callback_id": row.id,
                "client": row.client_id,
                "due_at": row.due_at,
                "status": row.status,
                "done_at": done_at,
                "days_late": max(0, (end - row.due_at.astimezone(tz).date()).days),
            }
        )
    return broken


def promises_kept_today(session: Session, settings: Settings, today: date) -> int:
    """Promises kept today: done today, on or before their due date (early ones included)."""
    params = {
        "uid": settings.id,
        "today": day_start(today, settings.tz),
        "tomorrow": day_start(today + timedelta(days=1), settings.tz),
    }
    return session.execute(_KEPT_TODAY, params).scalar_one()


# --- The answers -----------------------------------------------------------------------------


def _week(
    start: date, calls: int, reached: int, kept: PromiseCounts, shares: dict[str, float | None]
) -> dict[str, Any]:
    """The contract's ``week_summary`` for the week starting on Monday ``start``."""
    return {
        "start": start,
        "end": start + timedelta(days=6),
        "calls": calls,
        "reached": reached,
        "reach_rate": share(reached, calls),
        "promises_due": kept.due,
        "promises_kept": kept.kept,
        "promises_share": share(kept.kept, kept.due),
        "coverage": dict(shares),
    }


def _shares(cover: dict[str, Any]) -> dict[str, float | None]:
    return {entry["tier"]: entry["share"] for entry in cover["tiers"]}


def stats_for(session: Session, user: Any, now: datetime | None = None) -> dict[str, Any]:
    """``GET /stats`` for ``user`` (the request's CurrentUser) at ``now`` (default: the clock)."""
    settings = settings_of(user)
    tz = settings.tz
    today = scheduling.local_today(now or utcnow(), tz)
    this_monday = monday_of(today)
    last_monday = this_monday - timedelta(days=7)
    last_sunday = this_monday - timedelta(days=1)

    # One statement: the calls of each of the last STREAK_BATCH days, and the reached calls of
    # today, this week and last week.
    days = DayCounts(session, settings.id, tz)
    reached_today, reached_this, reached_last = days.load(
        today - timedelta(days=STREAK_BATCH - 1),
        today,
        extra=[
            (today, today, "reached"),
            (this_monday, today, "reached"),
            (last_monday, last_sunday, "reached"),
        ],
    )
    streak_days, met_today = streak(days, today, settings.daily_goal, settings.streak_weekends)

    window_start = today - timedelta(days=WINDOW_DAYS)
    ranges = {
        "window": (window_start, today),
        "this": (this_monday, today),
        "last": (last_monday, last_sunday),
    }
    judged = promises(session, settings, today, ranges)
    broken = broken_promises(session, settings, today, window_start)
    cover = coverage(session, settings, today)

    # The lists carry client ids so far: one read fetches the client_refs they need.
    slipping = [entry for tier in cover["tiers"] for entry in tier["slipping"]]
    refs = _refs(session, settings.id, [e["client"] for e in (*slipping, *broken)])
    for entry in (*slipping, *broken):
        entry["client"] = refs[entry["client"]]

    shares = _shares(cover)
    window = judged["window"]
    return {
        "date": today,
        "today": {
            "calls": days(today),
            "reached": reached_today,
            "promises_kept": promises_kept_today(session, settings, today),
            "goal": settings.daily_goal,
        },
        "streak": {
            "days": streak_days,
            "goal": settings.daily_goal,
            "weekends": settings.streak_weekends,
            "met_today": met_today,
        },
        "coverage": cover,
        "promises": {
            "window_days": WINDOW_DAYS,
            "due": window.due,
            "kept": window.kept,
            "share": share(window.kept, window.due),
            "broken": broken,
        },
        "persistence": persistence(session, settings.id),
        "inactive": inactive(session, settings, today),
        "weeks": {
            "this": _week(
                this_monday, days.total(this_monday, today), reached_this, judged["this"], shares
            ),
            "last": _week(
                last_monday,
                days.total(last_monday, last_sunday),
                reached_last,
                judged["last"],
                shares,
            ),
        },
    }


def week_summary(
    session: Session, user_id: str, week_start: date, *, now: datetime | None = None
) -> dict[str, Any]:
    """The ``week_summary`` of the rep's week starting on Monday ``week_start``.

    For the Monday push (the dispatcher passes last week's Monday) and anything else that needs
    one week without the rest of the stats; it gives the same figures as ``GET /stats`` does
    for that week. Calls and promises count up to today (a week still to come is all zeros);
    coverage is the current snapshot. Raises ValueError when ``week_start`` is not a Monday and
    LookupError when there is no such rep.
    """
    if week_start.weekday() != 0:
        raise ValueError(f"week_start must be a Monday, got {week_start} ({week_start:%A})")
    settings = load_settings(session, user_id)
    tz = settings.tz
    today = scheduling.local_today(now or utcnow(), tz)
    shares = _shares(coverage(session, settings, today, slipping=False))
    last = min(week_start + timedelta(days=6), today)
    if last < week_start:
        return _week(week_start, 0, 0, PromiseCounts(0, 0), shares)
    edges = [day_start(week_start, tz), day_start(last + timedelta(days=1), tz)]
    calls, reached = count_touches(session, user_id, edges, [(0, 1, None), (0, 1, "reached")])
    judged = promises(session, settings, today, {"week": (week_start, last)})
    return _week(week_start, calls, reached, judged["week"], shares)
