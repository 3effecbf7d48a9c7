"""Scheduling rules: local days, business days, suggested callbacks, quick picks and today's list.

Everything here is a pure function of its arguments. Nothing reads the clock, the database or the
request: the current instant is always passed in as an aware ``now``, and the rep's IANA zone as a
``ZoneInfo``. That keeps the rules testable with frozen times and lets the phone app mirror them
exactly (both sides run ``tests/vectors/scheduling.json``).

The method, from DESIGN.md "Rules of the domain": work out the rep's *local day* first, do the
arithmetic on ``date`` objects, and only then combine the day with a wall time and the zone
(``at_local``). Doing arithmetic on instants instead (``now + timedelta(days=2)``) goes wrong by an
hour, or by a day, whenever a DST change or a far-from-UTC zone is involved.

All instants returned are in UTC.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

__all__ = [
    "DEFAULT_CALL_TIME",
    "DEFAULT_TIERS",
    "OUTCOMES",
    "RECONNECT_LIMIT",
    "CallbackFacts",
    "ClientFacts",
    "QuickPick",
    "TodayItem",
    "add_business_days",
    "at_local",
    "build_today",
    "effective_cadence",
    "end_of_local_day",
    "is_business_day",
    "local_today",
    "next_weekday",
    "parse_hhmm",
    "quick_picks",
    "suggest_callback",
]

OUTCOMES = ("reached", "left_message", "no_answer")
DEFAULT_TIERS: dict[str, int] = {"A": 30, "B": 90, "C": 180}
DEFAULT_CALL_TIME = time(9, 0)
RECONNECT_LIMIT = 5

# Keys and labels of the weekday quick picks, indexed by date.weekday() (0 = Monday).
_WEEKDAY_KEYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

# Strict "HH:MM", 00:00 to 23:59. [0-9] rather than \d, because \d also matches non-ASCII digits
# that the phone app's parser would not accept.
_HHMM = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")

# A tier tag: an optional "tier" prefix with an optional separator ("tier a", "tier:A", "tier-a",
# "tier_a", "tierA"), then the tier name. The name is compared with the keys of the tiers mapping.
_TIER_TAG = re.compile(r"(?:tier\s*[:\-_]?\s*)?(\S+)", re.IGNORECASE)


def _require_aware(value: datetime, name: str) -> None:
    """Reject naive datetimes: converting one would silently assume the server's own zone."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime, got {value!r}")


def local_today(now: datetime, tz: ZoneInfo) -> date:
    """Return the rep's calendar date at the instant ``now``, in the zone ``tz``."""
    _require_aware(now, "now")
    return now.astimezone(tz).date()


def at_local(day: date, at: time, tz: ZoneInfo) -> datetime:
    """Return the UTC instant when clocks in ``tz`` read ``at`` on ``day``.

    An ambiguous wall time (clocks going back) gives its first occurrence. A wall time that does not
    exist (clocks going forward) is moved forward by the length of the gap, so 02:30 on a day that
    jumps from 02:00 to 03:00 gives 03:30, as most calendar apps do.
    """
    if at.tzinfo is not None:
        raise ValueError("at must be a naive wall time; the zone is given by tz")
    # fold=0 does both jobs (PEP 495): for an ambiguous time it selects the first occurrence, and
    # for a time in a gap it applies the offset from before the change, which lands on the instant
    # that reads `at` + gap on the clocks after the change.
    local = datetime.combine(day, at.replace(fold=0), tzinfo=tz)
    return local.astimezone(UTC)


def end_of_local_day(day: date, tz: ZoneInfo) -> datetime:
    """Return the UTC instant at which ``day`` ends in ``tz``: the first instant of the next day.

    Where midnight itself is skipped by a DST change, the next day starts at the end of the gap.
    """
    return at_local(day + timedelta(days=1), time(0, 0), tz)


def is_business_day(day: date) -> bool:
    """Return True for Monday to Friday. Public holidays are not modelled."""
    return day.weekday() < 5


def add_business_days(day: date, n: int) -> date:
    """Return the date ``n`` business days after ``day`` (n >= 1), skipping Saturdays and Sundays.

    Friday + 1 is Monday; Saturday + 1 and Sunday + 1 are both Monday.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    result = day
    remaining = n
    while remaining:
        result += timedelta(days=1)
        if is_business_day(result):
            remaining -= 1
    return result


def next_weekday(day: date, weekday: int) -> date:
    """Return the first date strictly after ``day`` falling on ``weekday`` (0 = Monday, 6 = Sunday).

    "Thursday" said on a Thursday means a week later, never today.
    """
    if not 0 <= weekday <= 6:
        raise ValueError(f"weekday must be 0..6, got {weekday}")
    return day + timedelta(days=(weekday - day.weekday() - 1) % 7 + 1)


def parse_hhmm(value: str) -> time:
    """Parse a wall time written "HH:MM" (24-hour, two digits each) into a naive ``time``.

    Raises ValueError for anything else, including "9:00", "24:00" and "09:00:00".
    """
    match = _HHMM.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"expected a time as HH:MM, got {value!r}")
    return time(int(match.group(1)), int(match.group(2)))


def effective_cadence(
    cadence_days: int | None, tags: list[str], tiers: dict[str, int] | None = None
) -> int | None:
    """Return the check-in rhythm in days for a client, or None when it has none.

    A per-client ``cadence_days`` wins. Otherwise the client's tier tags decide: a tag naming a tier
    ("A", "b", "tier a", "Tier:A", "tier-a"), compared case-insensitively with the keys of ``tiers``
    (``DEFAULT_TIERS`` when not given). With several tier tags the shortest cadence wins, so a
    client is never called less often than its most important tag asks for.
    """
    if cadence_days is not None:
        return cadence_days
    # "is None", not "or": an empty mapping means the rep has no tiers, not the defaults.
    tiers = DEFAULT_TIERS if tiers is None else tiers
    by_name = {name.casefold(): days for name, days in tiers.items()}
    found: list[int] = []
    for tag in tags:
        match = _TIER_TAG.fullmatch(tag.strip())
        if match is None:
            continue  # a tag with inner spaces, e.g. "tier a b", names no tier
        days = by_name.get(match.group(1).casefold())
        if days is not None:
            found.append(days)
    return min(found) if found else None


def _roll_to_monday(day: date) -> date:
    """Move a Saturday or Sunday forward to the following Monday; leave business days alone."""
    return day if is_business_day(day) else next_weekday(day, 0)


def suggest_callback(
    outcome: str,
    now: datetime,
    tz: ZoneInfo,
    call_time: time = DEFAULT_CALL_TIME,
    cadence_days: int | None = None,
) -> datetime | None:
    """Return the suggested next callback (UTC) after a call with ``outcome``, or None.

    - ``left_message``: two business days after the rep's local today;
    - ``no_answer``: the next business day;
    - ``reached``: today + ``cadence_days``, moved to Monday if that is a weekend; None without a
      cadence (the rep reached the client and nothing is owed).

    The day is combined with the rep's ``call_time`` in ``tz``. Raises ValueError for an unknown
    outcome or a cadence below one day (which could suggest a time already past).
    """
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}; expected one of {OUTCOMES}")
    today = local_today(now, tz)
    if outcome == "left_message":
        day = add_business_days(today, 2)
    elif outcome == "no_answer":
        day = add_business_days(today, 1)
    else:
        if cadence_days is None:
            return None
        if cadence_days < 1:
            raise ValueError(f"cadence_days must be at least 1, got {cadence_days}")
        day = _roll_to_monday(today + timedelta(days=cadence_days))
    return at_local(day, call_time, tz)


@dataclass(frozen=True)
class QuickPick:
    """One of the one-tap choices for the next callback, resolved to a day and an instant."""

    key: str
    label: str
    day: date
    due_at: datetime


def _same_day_next_month(day: date) -> date:
    """Return the same day next month, clamped to that month's last day (Jan 31 → Feb 28/29)."""
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    last = calendar.monthrange(year, month)[1]
    return date(year, month, min(day.day, last))


def quick_picks(
    now: datetime, tz: ZoneInfo, call_time: time = DEFAULT_CALL_TIME
) -> list[QuickPick]:
    """Return the quick picks for the next callback, in display order.

    1. "Tomorrow": literally today + 1, even on a Saturday or Sunday (the rep asked for it).
    2. Each business day from today + 2 to today + 6, labelled with its weekday name. That window
       never repeats a name and never shows today's own name, so "Thursday" is unambiguous.
    3. "Next week": the Monday of the next ISO week.
    4. "In a month": the same day next month, clamped to the month's end, moved to Monday if it
       falls on a weekend.

    Picks may share a day (on a Sunday, Tomorrow and Next week are both Monday); each is still
    offered, because each is what the rep would say. "A date" and "None" are UI choices, not here.
    """
    today = local_today(now, tz)
    days: list[tuple[str, str, date]] = [("tomorrow", "Tomorrow", today + timedelta(days=1))]
    for offset in range(2, 7):
        day = today + timedelta(days=offset)
        if is_business_day(day):
            days.append((_WEEKDAY_KEYS[day.weekday()], _WEEKDAY_NAMES[day.weekday()], day))
    days.append(("next_week", "Next week", next_weekday(today, 0)))
    days.append(("in_a_month", "In a month", _roll_to_monday(_same_day_next_month(today))))
    return [QuickPick(key, label, day, at_local(day, call_time, tz)) for key, label, day in days]


@dataclass(frozen=True)
class ClientFacts:
    """What build_today needs to know about one (non-archived) client."""

    id: str
    created_at: datetime
    last_touch_at: datetime | None
    cadence_days: int | None
    has_open_callback: bool


@dataclass(frozen=True)
class CallbackFacts:
    """One open callback (a promise to call a client again)."""

    id: str
    client_id: str
    due_at: datetime


@dataclass(frozen=True)
class TodayItem:
    """One line of today's list: who to call and why."""

    client_id: str
    reason: str
    due_at: datetime | None
    overdue: bool
    days_overdue: int
    callback_id: str | None = None


def build_today(
    now: datetime,
    tz: ZoneInfo,
    clients: Iterable[ClientFacts],
    callbacks: Iterable[CallbackFacts],
    reconnect_after_days: int = 90,
    call_time: time = DEFAULT_CALL_TIME,
    reconnect_limit: int = RECONNECT_LIMIT,
) -> list[TodayItem]:
    """Return today's list for a rep: promised callbacks, then due cadences, then a few reconnects.

    ``callbacks`` must be the open callbacks of the rep's non-archived clients; ``clients`` the
    rep's non-archived clients, with ``cadence_days`` already resolved by ``effective_cadence``.
    "Today" is the rep's local day at ``now`` in ``tz``. A client appears at most once: a callback
    beats a due cadence, which beats a reconnect. See API.md "Today" for the order.
    """
    _require_aware(now, "now")
    if reconnect_limit < 0:
        raise ValueError(f"reconnect_limit must not be negative, got {reconnect_limit}")
    today = local_today(now, tz)
    day_ends = end_of_local_day(today, tz)
    items: list[TodayItem] = []
    listed: set[str] = set()

    # 1. Promised callbacks due by the end of the rep's day. Sorting by instant puts overdue ones
    # (oldest first) before those still to come today; the id makes ties deterministic. A client
    # with several is shown once, with its earliest.
    due_callbacks = []
    for callback in callbacks:
        _require_aware(callback.due_at, "due_at")
        if callback.due_at < day_ends:
            due_callbacks.append(callback)
    due_callbacks.sort(key=lambda c: (c.due_at, c.id))
    for callback in due_callbacks:
        if callback.client_id in listed:
            continue
        listed.add(callback.client_id)
        overdue = callback.due_at < now
        items.append(
            TodayItem(
                client_id=callback.client_id,
                reason="callback",
                due_at=callback.due_at.astimezone(UTC),
                overdue=overdue,
                days_overdue=(today - local_today(callback.due_at, tz)).days if overdue else 0,
                callback_id=callback.id,
            )
        )

    # A client with any open callback, even one due next week, is already looked after: the promise
    # is the next contact, so neither the cadence nor a reconnect should put it on today's list.
    candidates = [c for c in clients if not c.has_open_callback and c.id not in listed]

    # 2. Cadences that have come due. The rhythm restarts at every touch, so it counts from the last
    # touch, or from when the client was added if there has never been one.
    due_cadences: list[tuple[int, str, date]] = []
    for client in candidates:
        if client.cadence_days is None:
            continue
        anchor = client.last_touch_at if client.last_touch_at is not None else client.created_at
        _require_aware(anchor, "the cadence anchor")
        due_day = local_today(anchor, tz) + timedelta(days=client.cadence_days)
        if due_day <= today:
            due_cadences.append(((today - due_day).days, client.id, due_day))
    # Most overdue first; ties by id.
    due_cadences.sort(key=lambda entry: (-entry[0], entry[1]))
    for days_overdue, client_id, due_day in due_cadences:
        if client_id in listed:
            continue
        listed.add(client_id)
        items.append(
            TodayItem(
                client_id=client_id,
                reason="cadence",
                due_at=at_local(due_day, call_time, tz),
                overdue=due_day < today,
                days_overdue=days_overdue,
            )
        )

    # 3. Reconnects: clients with no rhythm who were never touched, or not for reconnect_after_days.
    # Never-touched clients count as the longest silent (oldest first by when they were added), then
    # the touched ones by their last touch. Only a few a day, so the list never becomes a flood.
    silent_since = today - timedelta(days=reconnect_after_days)
    quiet: list[tuple[int, datetime, str]] = []
    for client in candidates:
        if client.cadence_days is not None:
            continue
        if client.last_touch_at is None:
            _require_aware(client.created_at, "created_at")
            quiet.append((0, client.created_at, client.id))
        elif local_today(client.last_touch_at, tz) <= silent_since:
            quiet.append((1, client.last_touch_at, client.id))
    quiet.sort()
    reconnects = 0
    for _, _, client_id in quiet:
        if reconnects >= reconnect_limit:
            break
        if client_id in listed:
            continue
        listed.add(client_id)
        reconnects += 1
        items.append(
            TodayItem(
                client_id=client_id,
                reason="reconnect",
                due_at=None,
                overdue=False,
                days_overdue=0,
            )
        )
    return items
