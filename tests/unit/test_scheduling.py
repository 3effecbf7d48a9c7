"""Unit and property tests for webapp.scheduling.

Every test passes its own ``now``; nothing depends on the machine's clock or zone. The shared,
hand-worked examples live in tests/vectors/scheduling.json (see test_vectors.py); this file covers
the edges around them and the properties that must hold for any instant in any zone.
"""

from __future__ import annotations

import ast
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import webapp.scheduling as scheduling
from webapp.scheduling import (
    DEFAULT_CALL_TIME,
    DEFAULT_TIERS,
    OUTCOMES,
    RECONNECT_LIMIT,
    CallbackFacts,
    ClientFacts,
    TodayItem,
    add_business_days,
    at_local,
    build_today,
    effective_cadence,
    end_of_local_day,
    is_business_day,
    local_today,
    next_weekday,
    parse_hhmm,
    quick_picks,
    suggest_callback,
)

LA = ZoneInfo("America/Los_Angeles")
AKL = ZoneInfo("Pacific/Auckland")
LON = ZoneInfo("Europe/London")
WEEKDAY_NAMES = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- strategies -------------------------------------------------------------------------------

# Zones chosen for awkward rules: far from UTC, half-hour and 45-minute offsets, a 30-minute DST
# (Lord Howe), a two-hour DST (Troll), negative DST in tzdata (Dublin), DST changes at midnight
# (Santiago, Havana, Beirut) and on weekdays (Cairo on a Friday/Thursday, Jerusalem on a Friday).
# Zones that once skipped a whole calendar day (Samoa, 2011) are outside the instants drawn below.
ZONE_NAMES = [
    "UTC",
    "Pacific/Auckland",
    "America/Los_Angeles",
    "Europe/London",
    "Pacific/Chatham",
    "Australia/Lord_Howe",
    "America/Santiago",
    "America/Havana",
    "Asia/Beirut",
    "Africa/Cairo",
    "Asia/Jerusalem",
    "Europe/Dublin",
    "Antarctica/Troll",
    "America/St_Johns",
    "Asia/Kathmandu",
    "Pacific/Kiritimati",
    "Pacific/Pago_Pago",
]
zones = st.sampled_from(ZONE_NAMES).map(ZoneInfo)
instants = st.datetimes(
    min_value=datetime(2015, 1, 1), max_value=datetime(2045, 12, 31), timezones=st.just(UTC)
)
days = st.dates(min_value=date(2015, 1, 1), max_value=date(2045, 12, 31))
# Whole minutes, like the HH:MM the rep sets, across the whole day including both midnights.
call_times = st.builds(time, st.integers(0, 23), st.integers(0, 59))
cadences = st.integers(min_value=1, max_value=400)

# No deadline: a timed assertion is flaky by nature (DESIGN.md "Testing": never a timed assertion).
no_deadline = settings(deadline=None)


def wall_time_exists(day: date, at: time, tz: ZoneInfo) -> bool:
    """True when clocks in tz actually read `at` on `day` (a round trip through UTC keeps it)."""
    naive = datetime.combine(day, at)
    back = naive.replace(tzinfo=tz).astimezone(UTC).astimezone(tz).replace(tzinfo=None)
    return back == naive


def expected_wall(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The wall time at_local must land on: `at` itself, or `at` + gap when `at` is skipped."""
    naive = datetime.combine(day, at)
    if wall_time_exists(day, at, tz):
        return naive
    before = naive.replace(tzinfo=tz, fold=0).utcoffset()
    after = naive.replace(tzinfo=tz, fold=1).utcoffset()
    assert before is not None and after is not None
    return naive + (after - before)


def assert_at_call_time(result: datetime, day: date, at: time, tz: ZoneInfo) -> None:
    local = result.astimezone(tz)
    assert local.replace(tzinfo=None) == expected_wall(day, at, tz)
    # A repeated wall time resolves to its first occurrence; astimezone marks a second with fold=1.
    assert local.fold == 0


# --- purity ------------------------------------------------------------------------------------

ALLOWED_IMPORTS = {
    "__future__",
    "calendar",
    "collections.abc",
    "dataclasses",
    "datetime",
    "re",
    "zoneinfo",
}


def test_module_is_pure_stdlib_and_never_reads_the_clock() -> None:
    """The rules must stay portable to the phone app: stdlib only, time always passed in."""
    tree = ast.parse(Path(scheduling.__file__).read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.module is not None and node.level == 0
            imported.add(node.module)
    assert imported <= ALLOWED_IMPORTS
    clock_reads = {"now", "utcnow", "today", "time_ns", "monotonic"}
    called = {
        node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    }
    assert not called & clock_reads


def test_results_depend_on_the_now_passed_in_not_the_clock() -> None:
    now = datetime(2026, 1, 15, 10, 0, tzinfo=LA)  # a Thursday in LA
    with time_machine.travel(datetime(2031, 7, 5, 3, 0, tzinfo=UTC), tick=False):
        assert local_today(now, LA) == date(2026, 1, 15)
        assert suggest_callback("no_answer", now, LA) == utc(2026, 1, 16, 17, 0)
        assert quick_picks(now, LA)[0].day == date(2026, 1, 16)


# --- local_today, at_local, end_of_local_day ---------------------------------------------------


def test_local_today_uses_the_reps_zone() -> None:
    now = utc(2026, 1, 15, 20, 30)  # Thursday evening in UTC
    assert local_today(now, AKL) == date(2026, 1, 16)
    assert local_today(now, LA) == date(2026, 1, 15)
    assert local_today(utc(2026, 1, 16, 7, 59), LA) == date(2026, 1, 15)
    assert local_today(utc(2026, 1, 16, 8, 0), LA) == date(2026, 1, 16)


def test_naive_now_is_rejected() -> None:
    with pytest.raises(ValueError, match="aware"):
        local_today(datetime(2026, 1, 15, 9, 0), LA)
    with pytest.raises(ValueError, match="aware"):
        suggest_callback("no_answer", datetime(2026, 1, 15, 9, 0), LA)


@pytest.mark.parametrize(
    ("day", "at", "tz", "expected"),
    [
        pytest.param(date(2026, 1, 15), time(9, 0), LA, utc(2026, 1, 15, 17, 0), id="LA winter"),
        pytest.param(date(2026, 7, 15), time(9, 0), LA, utc(2026, 7, 15, 16, 0), id="LA summer"),
        pytest.param(date(2026, 1, 15), time(9, 0), AKL, utc(2026, 1, 14, 20, 0), id="AKL summer"),
        pytest.param(date(2026, 7, 15), time(9, 0), AKL, utc(2026, 7, 14, 21, 0), id="AKL winter"),
        # Spring-forward gaps: the skipped wall time moves forward by the gap.
        pytest.param(date(2026, 3, 8), time(2, 30), LA, utc(2026, 3, 8, 10, 30), id="LA gap"),
        pytest.param(date(2026, 3, 29), time(1, 0), LON, utc(2026, 3, 29, 1, 0), id="LON gap"),
        pytest.param(date(2026, 9, 27), time(2, 0), AKL, utc(2026, 9, 26, 14, 0), id="AKL gap"),
        pytest.param(
            date(2026, 10, 4),
            time(2, 15),
            ZoneInfo("Australia/Lord_Howe"),
            utc(2026, 10, 3, 15, 45),  # 02:45 after a 30-minute jump
            id="Lord Howe half-hour gap",
        ),
        # Fall-back overlaps: the first occurrence, still on summer time.
        pytest.param(date(2026, 11, 1), time(1, 30), LA, utc(2026, 11, 1, 8, 30), id="LA overlap"),
        pytest.param(date(2026, 10, 25), time(1, 30), LON, utc(2026, 10, 25, 0, 30), id="LON ovl"),
        pytest.param(date(2026, 4, 5), time(2, 30), AKL, utc(2026, 4, 4, 13, 30), id="AKL overlap"),
    ],
)
def test_at_local(day: date, at: time, tz: ZoneInfo, expected: datetime) -> None:
    result = at_local(day, at, tz)
    assert result == expected
    assert result.tzinfo is UTC


def test_at_local_rejects_an_aware_time() -> None:
    with pytest.raises(ValueError):
        at_local(date(2026, 1, 15), time(9, 0, tzinfo=UTC), LA)


def test_at_local_ignores_a_fold_on_the_time() -> None:
    # Callers cannot pick the second occurrence by accident: the rule is always the first.
    assert at_local(date(2026, 11, 1), time(1, 30, fold=1), LA) == utc(2026, 11, 1, 8, 30)


@pytest.mark.parametrize(
    ("day", "tz", "expected", "hours"),
    [
        pytest.param(date(2026, 1, 14), LA, utc(2026, 1, 15, 8), 24, id="LA plain day"),
        pytest.param(date(2026, 3, 8), LA, utc(2026, 3, 9, 7), 23, id="LA spring forward"),
        pytest.param(date(2026, 11, 1), LA, utc(2026, 11, 2, 8), 25, id="LA fall back"),
        pytest.param(date(2026, 9, 27), AKL, utc(2026, 9, 27, 11), 23, id="AKL spring forward"),
        pytest.param(date(2026, 4, 5), AKL, utc(2026, 4, 5, 12), 25, id="AKL fall back"),
        # Chile skips 00:00-01:00 on Sunday 6 Sep 2026: that day begins at 01:00.
        pytest.param(
            date(2026, 9, 5),
            ZoneInfo("America/Santiago"),
            utc(2026, 9, 6, 4),
            24,
            id="Santiago, midnight skipped",
        ),
    ],
)
def test_end_of_local_day(day: date, tz: ZoneInfo, expected: datetime, hours: int) -> None:
    assert end_of_local_day(day, tz) == expected
    assert end_of_local_day(day, tz) - end_of_local_day(day - timedelta(days=1), tz) == timedelta(
        hours=hours
    )


@given(day=days, at=call_times, tz=zones)
def test_at_local_lands_on_the_wall_time_or_just_past_a_gap(
    day: date, at: time, tz: ZoneInfo
) -> None:
    result = at_local(day, at, tz)
    assert result.tzinfo is UTC
    assert_at_call_time(result, day, at, tz)


@given(day=days, tz=zones)
def test_end_of_local_day_is_the_first_instant_of_the_next_day(day: date, tz: ZoneInfo) -> None:
    end = end_of_local_day(day, tz)
    assert end.astimezone(tz).date() == day + timedelta(days=1)
    assert (end - timedelta(microseconds=1)).astimezone(tz).date() == day


# --- business days and weekdays ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "expected"),
    [(date(2026, 1, 12) + timedelta(days=i), i < 5) for i in range(7)],
    ids=WEEKDAY_NAMES,
)
def test_is_business_day(day: date, expected: bool) -> None:
    assert is_business_day(day) is expected


@pytest.mark.parametrize(
    ("day", "n", "expected"),
    [
        (date(2026, 1, 12), 1, date(2026, 1, 13)),  # Mon + 1 = Tue
        (date(2026, 1, 15), 2, date(2026, 1, 19)),  # Thu + 2 = Mon
        (date(2026, 1, 16), 1, date(2026, 1, 19)),  # Fri + 1 = Mon
        (date(2026, 1, 16), 2, date(2026, 1, 20)),  # Fri + 2 = Tue
        (date(2026, 1, 17), 1, date(2026, 1, 19)),  # Sat + 1 = Mon
        (date(2026, 1, 18), 1, date(2026, 1, 19)),  # Sun + 1 = Mon
        (date(2026, 1, 18), 2, date(2026, 1, 20)),  # Sun + 2 = Tue
        (date(2026, 1, 12), 5, date(2026, 1, 19)),  # Mon + 5 = next Mon
        (date(2026, 1, 16), 10, date(2026, 1, 30)),  # Fri + 10 = Fri two weeks on
        (date(2026, 12, 31), 2, date(2027, 1, 4)),  # across the year; holidays not modelled
    ],
)
def test_add_business_days(day: date, n: int, expected: date) -> None:
    assert add_business_days(day, n) == expected


@pytest.mark.parametrize("n", [0, -1])
def test_add_business_days_needs_at_least_one(n: int) -> None:
    with pytest.raises(ValueError):
        add_business_days(date(2026, 1, 12), n)


@given(day=days, n=st.integers(1, 60))
def test_add_business_days_counts_exactly_n_business_days(day: date, n: int) -> None:
    result = add_business_days(day, n)
    assert is_business_day(result)
    between = [day + timedelta(days=i) for i in range(1, (result - day).days + 1)]
    assert sum(is_business_day(d) for d in between) == n


@pytest.mark.parametrize(
    ("day", "weekday", "expected"),
    [
        (date(2026, 1, 15), 3, date(2026, 1, 22)),  # "Thursday" said on a Thursday: next week
        (date(2026, 1, 15), 4, date(2026, 1, 16)),  # Thu -> Fri
        (date(2026, 1, 18), 0, date(2026, 1, 19)),  # Sun -> Mon
        (date(2026, 1, 12), 6, date(2026, 1, 18)),  # Mon -> Sun
        (date(2026, 1, 30), 0, date(2026, 2, 2)),  # across a month end
    ],
)
def test_next_weekday(day: date, weekday: int, expected: date) -> None:
    assert next_weekday(day, weekday) == expected


@pytest.mark.parametrize("weekday", [-1, 7])
def test_next_weekday_rejects_bad_weekday(weekday: int) -> None:
    with pytest.raises(ValueError):
        next_weekday(date(2026, 1, 15), weekday)


@given(day=days, weekday=st.integers(0, 6))
def test_next_weekday_is_strictly_after_and_within_a_week(day: date, weekday: int) -> None:
    result = next_weekday(day, weekday)
    assert result.weekday() == weekday
    assert 1 <= (result - day).days <= 7


# --- parse_hhmm --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("00:00", time(0, 0)), ("09:00", time(9, 0)), ("13:05", time(13, 5)), ("23:59", time(23, 59))],
)
def test_parse_hhmm(value: str, expected: time) -> None:
    assert parse_hhmm(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "9:00",
        "09:0",
        "0900",
        "24:00",
        "12:60",
        "09:00:00",
        " 09:00",
        "09:00\n",
        "ab:cd",
        "\uff10\uff19:\uff10\uff10",
        "-1:00",
        None,
        900,
    ],
)
def test_parse_hhmm_rejects(value: object) -> None:
    with pytest.raises(ValueError):
        parse_hhmm(value)  # type: ignore[arg-type]


@given(hour=st.integers(0, 23), minute=st.integers(0, 59))
def test_parse_hhmm_round_trips(hour: int, minute: int) -> None:
    assert parse_hhmm(f"{hour:02d}:{minute:02d}") == time(hour, minute)


# --- effective_cadence -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cadence_days", "tags", "expected"),
    [
        (45, ["A"], 45),  # the client's own cadence wins over its tier
        (None, ["A"], 30),
        (None, ["b"], 90),
        (None, ["Tier C"], 180),
        (None, ["tier:A"], 30),
        (None, ["tier-a"], 30),
        (None, ["TIER_B"], 90),
        (None, ["  tier a  "], 30),
        (None, ["Tier: b"], 90),
        (None, ["tierC"], 180),
        (None, ["C", "customer", "tier b"], 90),  # several tier tags: the shortest cadence
        (None, ["c", "A", "b"], 30),
        (None, [], None),
        (None, ["vip", "tier", "tier d", "a b", "tier a b", "abc", "tiers a"], None),
    ],
)
def test_effective_cadence(cadence_days: int | None, tags: list[str], expected: int | None) -> None:
    assert effective_cadence(cadence_days, tags) == expected


def test_effective_cadence_with_edited_tiers() -> None:
    tiers = {"A": 14, "B": 60, "Gold": 7}
    assert effective_cadence(None, ["a"], tiers) == 14
    assert effective_cadence(None, ["tier gold", "A"], tiers) == 7
    assert effective_cadence(None, ["C"], tiers) is None  # C is no longer a tier
    assert effective_cadence(None, ["A"], {}) is None  # no tiers at all, not the defaults
    assert DEFAULT_TIERS == {"A": 30, "B": 90, "C": 180}


# --- suggest_callback --------------------------------------------------------------------------


def test_suggest_callback_defaults_to_nine_local() -> None:
    assert time(9, 0) == DEFAULT_CALL_TIME
    now = datetime(2026, 7, 14, 12, 0, tzinfo=LON)  # Tuesday, BST
    assert suggest_callback("no_answer", now, LON) == utc(2026, 7, 15, 8, 0)


def test_suggest_callback_rejects_unknown_outcome() -> None:
    with pytest.raises(ValueError, match="outcome"):
        suggest_callback("voicemail", utc(2026, 1, 15, 12), LA)


@pytest.mark.parametrize("cadence_days", [0, -30])
def test_suggest_callback_rejects_a_cadence_below_one_day(cadence_days: int) -> None:
    with pytest.raises(ValueError, match="cadence"):
        suggest_callback("reached", utc(2026, 1, 15, 12), LA, cadence_days=cadence_days)


def test_suggest_callback_ignores_cadence_unless_reached() -> None:
    now = datetime(2026, 1, 14, 11, 0, tzinfo=LA)  # Wednesday
    assert suggest_callback("left_message", now, LA, cadence_days=30) == utc(2026, 1, 16, 17)
    assert suggest_callback("no_answer", now, LA, cadence_days=30) == utc(2026, 1, 15, 17)


@no_deadline
@given(
    outcome=st.sampled_from(OUTCOMES),
    now=instants,
    tz=zones,
    at=call_times,
    cadence_days=st.none() | cadences,
)
def test_suggested_callback_properties(
    outcome: str, now: datetime, tz: ZoneInfo, at: time, cadence_days: int | None
) -> None:
    result = suggest_callback(outcome, now, tz, at, cadence_days)
    if outcome == "reached" and cadence_days is None:
        assert result is None
        return
    assert result is not None
    assert result > now, "never in the past"
    local = result.astimezone(tz)
    day = local.date()
    assert is_business_day(day), "never on a Saturday or Sunday in the rep's zone"
    assert_at_call_time(result, day, at, tz)

    today = local_today(now, tz)
    business_days_between = sum(
        is_business_day(today + timedelta(days=i)) for i in range(1, (day - today).days)
    )
    if outcome == "no_answer":
        assert business_days_between == 0  # the very next business day
    elif outcome == "left_message":
        assert business_days_between == 1  # the second business day
    else:
        assert cadence_days is not None
        target = today + timedelta(days=cadence_days)
        # The cadence day itself, or the Monday after a weekend.
        assert day == target or (not is_business_day(target) and 1 <= (day - target).days <= 2)


# --- quick_picks -------------------------------------------------------------------------------


@pytest.mark.parametrize("offset", range(7), ids=WEEKDAY_NAMES)
def test_quick_picks_for_each_day_of_the_week(offset: int) -> None:
    today = date(2026, 6, 8) + timedelta(days=offset)  # 8 June 2026 is a Monday
    now = at_local(today, time(13, 0), LA)
    picks = quick_picks(now, LA, time(10, 0))
    keys = [p.key for p in picks]
    assert keys[0] == "tomorrow" and keys[-2:] == ["next_week", "in_a_month"]
    weekday_picks = picks[1:-2]
    assert [p.day for p in weekday_picks] == [
        today + timedelta(days=i) for i in range(2, 7) if is_business_day(today + timedelta(days=i))
    ]
    assert [p.label for p in weekday_picks] == [
        WEEKDAY_NAMES[p.day.weekday()] for p in weekday_picks
    ]
    assert [p.key for p in weekday_picks] == [p.label[:3].lower() for p in weekday_picks]
    assert picks[0].day == today + timedelta(days=1)
    assert picks[-2].day == next_weekday(today, 0)
    # Mid-month in June, so "in a month" is 8-14 July, moved off a weekend.
    assert picks[-1].day in (today.replace(month=7), next_weekday(today.replace(month=7), 0))


@pytest.mark.parametrize(
    ("today", "expected"),
    [
        (date(2026, 1, 29), date(2026, 3, 2)),  # no 29 Feb in 2026: Sat 28 Feb, then Monday
        (date(2026, 3, 31), date(2026, 4, 30)),  # 31 Mar -> 30 Apr (Thursday)
        (date(2026, 5, 31), date(2026, 6, 30)),  # 31 May (Sunday) -> 30 Jun (Tuesday)
        (date(2027, 12, 31), date(2028, 1, 31)),  # across the year, a Monday
        (date(2028, 1, 30), date(2028, 2, 29)),  # leap year: 29 Feb is a Tuesday
        (date(2026, 10, 31), date(2026, 11, 30)),  # 31 Oct -> 30 Nov (Monday)
        (date(2026, 8, 31), date(2026, 9, 30)),  # 31 Aug -> 30 Sep (Wednesday)
        (date(2026, 6, 14), date(2026, 7, 14)),  # plain case
        (date(2026, 6, 11), date(2026, 7, 13)),  # 11 Jul is a Saturday -> Monday 13th
    ],
)
def test_in_a_month(today: date, expected: date) -> None:
    now = at_local(today, time(12, 0), LON)
    assert quick_picks(now, LON)[-1].day == expected


@no_deadline
@given(now=instants, tz=zones, at=call_times)
def test_quick_picks_properties(now: datetime, tz: ZoneInfo, at: time) -> None:
    today = local_today(now, tz)
    picks = quick_picks(now, tz, at)
    assert picks[0].key == "tomorrow"
    assert [p.key for p in picks][-2:] == ["next_week", "in_a_month"]
    assert picks[0].day == today + timedelta(days=1)
    weekday_picks = picks[1:-2]
    labels = [p.label for p in weekday_picks]
    assert len(labels) == len(set(labels)), "no weekday name repeats"
    assert WEEKDAY_NAMES[today.weekday()] not in labels, "none is today's name"
    assert len(weekday_picks) in (3, 4, 5)
    for pick in weekday_picks:
        assert 2 <= (pick.day - today).days <= 6
        assert is_business_day(pick.day)
        assert pick.label == WEEKDAY_NAMES[pick.day.weekday()]
    assert picks[-2].day.weekday() == 0 and 1 <= (picks[-2].day - today).days <= 7
    assert is_business_day(picks[-1].day) and 28 <= (picks[-1].day - today).days <= 33
    for pick in picks:
        assert pick.due_at > now
        assert_at_call_time(pick.due_at, pick.day, at, tz)


# --- build_today -------------------------------------------------------------------------------

NOW = datetime(2026, 1, 14, 10, 0, tzinfo=LA)  # Wednesday 14 Jan 2026, 18:00Z
CREATED = utc(2025, 1, 1)


def client(
    id: str,
    last_touch_at: datetime | None = None,
    cadence_days: int | None = None,
    has_open_callback: bool = False,
    created_at: datetime = CREATED,
) -> ClientFacts:
    return ClientFacts(id, created_at, last_touch_at, cadence_days, has_open_callback)


def summary(items: list[TodayItem]) -> list[tuple[str, str]]:
    return [(item.client_id, item.reason) for item in items]


def test_build_today_returns_callback_due_at_in_utc() -> None:
    callbacks = [CallbackFacts("cb", "c", datetime(2026, 1, 14, 15, 0, tzinfo=LA))]
    [item] = build_today(NOW, LA, [client("c", has_open_callback=True)], callbacks)
    assert item.due_at == utc(2026, 1, 14, 23, 0) and item.due_at.tzinfo is UTC
    assert (item.overdue, item.days_overdue, item.callback_id) == (False, 0, "cb")


def test_build_today_trusts_the_callbacks_it_is_given() -> None:
    # The caller passes only open callbacks of non-archived clients; the client facts may come from
    # a separate query, so a callback is listed even if its client is not among `clients`.
    callbacks = [CallbackFacts("cb", "elsewhere", utc(2026, 1, 14, 17))]
    assert summary(build_today(NOW, LA, [], callbacks)) == [("elsewhere", "callback")]


def test_build_today_a_listed_callback_beats_a_stale_flag() -> None:
    # has_open_callback False but a callback is due: the callback wins, the client shows once.
    items = build_today(
        NOW, LA, [client("c", cadence_days=7)], [CallbackFacts("cb", "c", utc(2026, 1, 14, 17))]
    )
    assert summary(items) == [("c", "callback")]


def test_build_today_lists_a_client_given_twice_once() -> None:
    clients = [client("dup", cadence_days=7), client("dup", cadence_days=14), client("dup")]
    assert summary(build_today(NOW, LA, clients, [])) == [("dup", "cadence")]


def test_build_today_reconnect_limit() -> None:
    clients = [client(f"r{i}", created_at=utc(2025, 1, 1 + i)) for i in range(8)]
    assert RECONNECT_LIMIT == 5
    assert summary(build_today(NOW, LA, clients, [])) == [(f"r{i}", "reconnect") for i in range(5)]
    assert build_today(NOW, LA, clients, [], reconnect_limit=0) == []
    assert len(build_today(NOW, LA, clients, [], reconnect_limit=20)) == 8
    with pytest.raises(ValueError):
        build_today(NOW, LA, clients, [], reconnect_limit=-1)


def test_build_today_reconnect_after_days_is_configurable() -> None:
    touched = client("t", last_touch_at=utc(2025, 12, 15, 20))  # 30 local days before today
    assert build_today(NOW, LA, [touched], []) == []
    assert summary(build_today(NOW, LA, [touched], [], reconnect_after_days=30)) == [
        ("t", "reconnect")
    ]
    assert build_today(NOW, LA, [touched], [], reconnect_after_days=31) == []


def test_build_today_accepts_iterators() -> None:
    items = build_today(NOW, LA, iter([client("c")]), iter([]))
    assert summary(items) == [("c", "reconnect")]


def test_build_today_rejects_naive_times() -> None:
    with pytest.raises(ValueError):
        build_today(NOW, LA, [], [CallbackFacts("cb", "c", datetime(2026, 1, 14, 9))])
    with pytest.raises(ValueError):
        build_today(NOW, LA, [client("c", last_touch_at=datetime(2026, 1, 1), cadence_days=3)], [])


# Client ids come from a small pool, so callbacks collide with clients and with each other.
CLIENT_IDS = [f"c{i}" for i in range(12)]


@st.composite
def today_inputs(
    draw: st.DrawFn,
) -> tuple[datetime, ZoneInfo, list[ClientFacts], list[CallbackFacts]]:
    now = draw(instants)
    tz = draw(zones)
    # Minutes relative to now: up to ~400 days back and a few weeks ahead.
    offsets = st.integers(min_value=-400 * 24 * 60, max_value=30 * 24 * 60)
    past_offsets = st.integers(min_value=-400 * 24 * 60, max_value=0)

    def around_now(minutes: int) -> datetime:
        return now + timedelta(minutes=minutes)

    ids = draw(st.lists(st.sampled_from(CLIENT_IDS), unique=True, max_size=len(CLIENT_IDS)))
    clients = [
        ClientFacts(
            id=client_id,
            created_at=around_now(draw(st.integers(-800 * 24 * 60, 0))),
            last_touch_at=draw(st.none() | past_offsets.map(around_now)),
            cadence_days=draw(st.none() | st.integers(1, 200)),
            has_open_callback=draw(st.booleans()),
        )
        for client_id in ids
    ]
    callbacks = [
        CallbackFacts(id=f"cb{i}", client_id=draw(st.sampled_from(CLIENT_IDS)), due_at=due_at)
        for i, due_at in enumerate(draw(st.lists(offsets.map(around_now), max_size=10)))
    ]
    return now, tz, clients, callbacks


@no_deadline
@given(
    inputs=today_inputs(),
    reconnect_after_days=st.integers(0, 200),
    reconnect_limit=st.integers(0, 8),
    at=call_times,
)
def test_build_today_properties(
    inputs: tuple[datetime, ZoneInfo, list[ClientFacts], list[CallbackFacts]],
    reconnect_after_days: int,
    reconnect_limit: int,
    at: time,
) -> None:
    now, tz, clients, callbacks = inputs
    items = build_today(now, tz, clients, callbacks, reconnect_after_days, at, reconnect_limit)
    today = local_today(now, tz)
    day_ends = end_of_local_day(today, tz)
    by_id = {c.id: c for c in clients}

    # A client appears once, and the reasons come in the order callback, cadence, reconnect.
    assert len({i.client_id for i in items}) == len(items)
    rank = {"callback": 0, "cadence": 1, "reconnect": 2}
    assert [rank[i.reason] for i in items] == sorted(rank[i.reason] for i in items)
    listed = {i.client_id for i in items}

    # Callbacks: exactly the clients with a callback due by the end of the local day, each with
    # its earliest one, soonest first.
    due = [c for c in callbacks if c.due_at < day_ends]
    cb_items = [i for i in items if i.reason == "callback"]
    assert {i.client_id for i in cb_items} == {c.client_id for c in due}
    assert [i.due_at for i in cb_items] == sorted(i.due_at for i in cb_items)  # type: ignore[type-var]
    for item in cb_items:
        earliest = min(
            (c for c in due if c.client_id == item.client_id), key=lambda c: (c.due_at, c.id)
        )
        assert item.callback_id == earliest.id and item.due_at == earliest.due_at
        assert item.overdue == (earliest.due_at < now)
        if item.overdue:
            assert item.days_overdue == (today - earliest.due_at.astimezone(tz).date()).days >= 0
        else:
            assert item.days_overdue == 0

    # Cadence: exactly the due clients with no open callback, most overdue first, ties by id.
    def cadence_due_day(c: ClientFacts) -> date:
        assert c.cadence_days is not None
        anchor = c.last_touch_at or c.created_at
        return anchor.astimezone(tz).date() + timedelta(days=c.cadence_days)

    cadence_items = [i for i in items if i.reason == "cadence"]
    assert {i.client_id for i in cadence_items} == {
        c.id
        for c in clients
        if not c.has_open_callback
        and c.cadence_days is not None
        and c.id not in {i.client_id for i in cb_items}
        and cadence_due_day(c) <= today
    }
    keys = [(-i.days_overdue, i.client_id) for i in cadence_items]
    assert keys == sorted(keys)
    for item in cadence_items:
        due_day = cadence_due_day(by_id[item.client_id])
        assert item.days_overdue == (today - due_day).days >= 0
        assert item.overdue == (due_day < today)
        assert item.due_at == at_local(due_day, at, tz)
        assert item.callback_id is None

    # Reconnect: eligible, limited, longest silent first; a shortfall means none was left out.
    def eligible(c: ClientFacts) -> bool:
        silent = (
            c.last_touch_at is None
            or (today - c.last_touch_at.astimezone(tz).date()).days >= reconnect_after_days
        )
        return not c.has_open_callback and c.cadence_days is None and silent

    def silence_key(c: ClientFacts) -> tuple[int, datetime, str]:
        if c.last_touch_at is None:
            return (0, c.created_at, c.id)
        return (1, c.last_touch_at, c.id)

    reconnect_items = [i for i in items if i.reason == "reconnect"]
    assert len(reconnect_items) <= reconnect_limit
    chosen = [by_id[i.client_id] for i in reconnect_items]
    assert all(eligible(c) for c in chosen)
    assert [silence_key(c) for c in chosen] == sorted(silence_key(c) for c in chosen)
    left_out = [c for c in clients if eligible(c) and c.id not in listed]
    if len(reconnect_items) < reconnect_limit:
        assert left_out == []
    elif chosen and left_out:
        assert max(silence_key(c) for c in chosen) < min(silence_key(c) for c in left_out)
    for item in reconnect_items:
        assert (item.due_at, item.overdue, item.days_overdue, item.callback_id) == (
            None,
            False,
            0,
            None,
        )


@no_deadline
@given(inputs=today_inputs())
def test_build_today_never_lists_a_client_twice_even_with_duplicate_facts(
    inputs: tuple[datetime, ZoneInfo, list[ClientFacts], list[CallbackFacts]],
) -> None:
    now, tz, clients, callbacks = inputs
    assume(clients)
    doubled = clients + [
        ClientFacts(c.id, c.created_at, None, None, False) for c in clients
    ]  # the same ids again, with facts that would put them in another section
    items = build_today(now, tz, doubled, callbacks, reconnect_limit=len(CLIENT_IDS))
    assert len({i.client_id for i in items}) == len(items)
