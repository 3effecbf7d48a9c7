"""Unit tests of the stats rules that need no database: tiers, the streak walk, day edges and
the opener. The figures computed from the log are in test_stats_figures.py."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from webapp.scheduling import effective_cadence
from webapp.services.accounts import DEFAULT_PROMPTS
from webapp.services.stats import (
    client_tier,
    day_edges,
    day_start,
    monday_of,
    opener,
    share,
    streak,
)

TIERS = {"A": 30, "B": 90, "C": 180}
LA = ZoneInfo("America/Los_Angeles")
AKL = ZoneInfo("Pacific/Auckland")


# --- tiers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tags", "tier"),
    [
        (["A"], "A"),
        (["b"], "B"),
        (["tier c"], "C"),
        (["Tier:A"], "A"),
        (["tier-b"], "B"),
        (["tier_c"], "C"),
        (["tierA"], "A"),
        ([" a "], "A"),
        (["wholesale", "B"], "B"),
        ([], None),
        (["wholesale", "north"], None),
        (["tier a b"], None),  # inner spaces: names no tier
        (["AA"], None),
        (["D"], None),
    ],
)
def test_tier_tags_follow_the_scheduling_grammar(tags, tier):
    assert client_tier(tags, TIERS) == tier


def test_several_tier_tags_go_to_the_shortest_rhythm():
    assert client_tier(["C", "A"], TIERS) == "A"
    assert client_tier(["tier c", "b"], TIERS) == "B"
    # The rep's own rhythms decide, not the letters.
    assert client_tier(["A", "B"], {"A": 120, "B": 60, "C": 180}) == "B"
    # A tie goes to the first name, whatever the tag order.
    assert client_tier(["B", "A"], {"A": 30, "B": 30, "C": 180}) == "A"


TAG_FORMS = st.sampled_from(
    ["a", "B", "c", "tier a", "Tier:B", "tier-c", "tier_a", "tierB", "TIER C", "d", "x", "tier"]
)
RHYTHMS = st.fixed_dictionaries({name: st.integers(1, 400) for name in "ABC"})


@given(st.lists(TAG_FORMS, max_size=4), RHYTHMS)
def test_the_tier_gives_the_same_rhythm_as_scheduling(tags, tiers):
    """The tier counted in coverage has the rhythm today's list uses for the client."""
    tier = client_tier(tags, tiers)
    expected = effective_cadence(None, tags, tiers)
    assert (tiers[tier] if tier else None) == expected


def test_share_is_rounded_and_null_without_a_whole():
    assert share(31, 40) == 0.775
    assert share(8, 9) == 0.889
    assert share(0, 5) == 0.0
    assert share(0, 0) is None


# --- streak ----------------------------------------------------------------------------------

MON = date(2026, 11, 23)  # a Monday


def counts(**by_day: int):
    """Calls per day, by offset from MON: d0=MON, m1=the day before, m2=two days before..."""
    table = {}
    for key, value in by_day.items():
        offset = int(key[1:]) * (-1 if key[0] == "m" else 1)
        table[MON + timedelta(days=offset)] = value
    return lambda day: table.get(day, 0)


def test_streak_counts_days_ending_yesterday_and_today_once_met():
    week = counts(m3=10, m2=12, m1=10)  # Fri, Sat, Sun... with weekends counted
    assert streak(week, MON, goal=10, weekends=True) == (3, False)
    met = counts(d0=10, m3=10, m2=12, m1=10)
    assert streak(met, MON, goal=10, weekends=True) == (4, True)


def test_an_unfinished_today_does_not_break_the_streak():
    assert streak(counts(d0=3, m1=10, m2=10), MON, goal=10, weekends=True) == (2, False)


def test_a_day_below_the_goal_ends_the_streak():
    assert streak(counts(m1=10, m2=9, m3=10), MON, goal=10, weekends=True) == (1, False)
    assert streak(counts(m2=10, m3=10), MON, goal=10, weekends=True) == (0, False)


def test_weekends_neither_count_nor_break_unless_chosen():
    # Monday: Fri (m3) and Thu (m4) met, the weekend (m1, m2) empty.
    quiet_weekend = counts(m3=10, m4=10, m5=2)
    assert streak(quiet_weekend, MON, goal=10, weekends=False) == (2, False)
    assert streak(quiet_weekend, MON, goal=10, weekends=True) == (0, False)
    # Calls on the weekend do not add days when weekends do not count.
    busy_weekend = counts(m1=20, m2=20, m3=10, m4=10)
    assert streak(busy_weekend, MON, goal=10, weekends=False) == (2, False)
    assert streak(busy_weekend, MON, goal=10, weekends=True) == (4, False)


def test_today_on_a_weekend_is_met_but_not_counted_without_weekends():
    sunday = MON - timedelta(days=1)
    table = {sunday: 12, sunday - timedelta(days=2): 10}  # Sunday and Friday
    assert streak(lambda d: table.get(d, 0), sunday, goal=10, weekends=False) == (1, True)
    assert streak(lambda d: table.get(d, 0), sunday, goal=10, weekends=True) == (1, True)


def test_the_goal_must_be_positive():
    with pytest.raises(ValueError):
        streak(counts(), MON, goal=0, weekends=True)


@given(
    st.lists(st.integers(0, 3), min_size=1, max_size=40),
    st.integers(1, 3),
    st.booleans(),
)
def test_streak_matches_a_plain_count(history, goal, weekends):
    """Against the definition, written out differently: over the days before today (newest
    first), skip weekends if asked, and count until the first day below the goal."""
    today = MON + timedelta(days=len(history) % 7)
    calls = {today - timedelta(days=n): c for n, c in enumerate(history)}
    expected = 0
    for n in range(1, len(history) + 1):
        day = today - timedelta(days=n)
        if not weekends and day.weekday() >= 5:
            continue
        if calls.get(day, 0) < goal:
            break
        expected += 1
    met = calls[today] >= goal
    if met and (weekends or today.weekday() < 5):
        expected += 1
    assert streak(lambda d: calls.get(d, 0), today, goal, weekends) == (expected, met)


# --- local days ------------------------------------------------------------------------------


def test_day_edges_follow_dst_in_los_angeles():
    # Sunday 8 March 2026: clocks go from 02:00 to 03:00, a 23-hour day.
    edges = day_edges(date(2026, 3, 7), date(2026, 3, 9), LA)
    assert edges == [
        datetime(2026, 3, 7, 8, tzinfo=UTC),
        datetime(2026, 3, 8, 8, tzinfo=UTC),
        datetime(2026, 3, 9, 7, tzinfo=UTC),
        datetime(2026, 3, 10, 7, tzinfo=UTC),
    ]
    # Sunday 1 November 2026: 02:00 back to 01:00, a 25-hour day.
    start, end = day_edges(date(2026, 11, 1), date(2026, 11, 1), LA)
    assert end - start == timedelta(hours=25)


def test_day_edges_follow_dst_in_auckland():
    # Sunday 5 April 2026: 03:00 back to 02:00 (a 25-hour day); 27 September: 02:00 to 03:00.
    start, end = day_edges(date(2026, 4, 5), date(2026, 4, 5), AKL)
    assert (start, end - start) == (datetime(2026, 4, 4, 11, tzinfo=UTC), timedelta(hours=25))
    start, end = day_edges(date(2026, 9, 27), date(2026, 9, 27), AKL)
    assert (start, end - start) == (datetime(2026, 9, 26, 12, tzinfo=UTC), timedelta(hours=23))


def test_a_day_whose_midnight_is_skipped_starts_after_the_gap():
    # Santiago moves its clocks at midnight: 6 September 2026 starts at 01:00 local.
    santiago = ZoneInfo("America/Santiago")
    assert day_start(date(2026, 9, 6), santiago) == datetime(2026, 9, 6, 4, tzinfo=UTC)


def test_weeks_start_on_monday():
    assert monday_of(date(2026, 11, 23)) == date(2026, 11, 23)
    assert monday_of(date(2026, 11, 29)) == date(2026, 11, 23)
    assert monday_of(date(2026, 11, 30)) == date(2026, 11, 30)


# --- opener ----------------------------------------------------------------------------------


def make(**kwargs) -> str:
    args = {
        "days_silent": 210,
        "last_note": None,
        "talking_points": None,
        "company": None,
        "prompts": DEFAULT_PROMPTS,
        "key": "client-1",
    }
    return opener(**{**args, **kwargs})


def test_opener_from_everything_known():
    text = make(
        last_note="wants the spring catalogue.",
        talking_points="- ask how the new warehouse is going\n- mention the loyalty discount",
    )
    assert text == (
        "It's been 7 months since you spoke. Last time: “wants the spring catalogue”. "
        "Ask how the new warehouse is going."
    )


def test_opener_names_the_company():
    text = make(company="Hushco", talking_points="Mention the loyalty discount")
    assert text == "It's been 7 months since you spoke with Hushco. Mention the loyalty discount."


@pytest.mark.parametrize(
    ("days", "start"),
    [
        (None, "You haven't spoken yet."),
        (0, "You spoke today."),
        (1, "You spoke yesterday."),
        (2, "It's been 2 days since you spoke."),
        (13, "It's been 13 days since you spoke."),
        (14, "It's been 2 weeks since you spoke."),
        (59, "It's been 8 weeks since you spoke."),
        (60, "It's been 2 months since you spoke."),
        (364, "It's been 12 months since you spoke."),
        (365, "It's been a year since you spoke."),
        (400, "It's been over a year since you spoke."),
        (730, "It's been 2 years since you spoke."),
        (1000, "It's been over 2 years since you spoke."),
    ],
)
def test_opener_says_how_long_in_plain_words(days, start):
    assert make(days_silent=days, talking_points="Ask about the trade show").startswith(start)


def test_a_long_note_is_clipped_at_a_word():
    note = "asked about " + " ".join(["volume pricing for the whole northern region"] * 5)
    text = make(last_note=note, talking_points="Ask about the trade show")
    quoted = text.split("“", 1)[1].split("”", 1)[0]
    assert quoted.endswith("…") and len(quoted) <= 80
    assert not quoted[:-1].endswith(" ")
    assert note.startswith(quoted[:-1])


def test_a_note_keeps_its_question_mark_and_loses_its_quotes():
    text = make(last_note='"can you send the price list?"', talking_points="Ask about prices")
    assert "Last time: “can you send the price list?” Ask about prices." in text
    # Line breaks and runs of spaces in a note become single spaces.
    assert "“call back  after\nthe show”" not in make(last_note="call back  after\nthe show")
    assert "“call back after the show”." in make(last_note="call back  after\nthe show")


@pytest.mark.parametrize(
    ("points", "ask"),
    [
        ("- ask how the new warehouse is going", "Ask how the new warehouse is going."),
        ("1. Check the spring order.", "Check the spring order."),
        ("\n\n  • offer the demo unit  \nsecond line", "Offer the demo unit."),
        ("How did the trade show go?", "How did the trade show go?"),
        ("new warehouse in March", "Bring up: new warehouse in March."),
        ("* their daughter's wedding!", "Their daughter's wedding!"),
    ],
)
def test_the_first_talking_point_becomes_what_to_say(points, ask):
    assert make(talking_points=points).endswith(" " + ask)


def test_without_talking_points_a_prompt_is_picked_per_client():
    texts = {make(key=f"client-{n}") for n in range(40)}
    endings = {text.split(". ", 1)[1] for text in texts}
    # Every client gets one of the prompts; different clients get different ones ...
    assert endings <= set(DEFAULT_PROMPTS)
    assert len(endings) > 1
    # ... and the same client keeps its own from one day to the next.
    same = make(key="client-7").split(". ", 1)[1]
    assert make(key="client-7", days_silent=211).split(". ", 1)[1] == same


def test_the_reps_own_prompts_are_used_and_blank_ones_skipped():
    assert make(prompts=["", "  ", "Still using the blue model?"]).endswith(
        "Still using the blue model?"
    )
    # No usable prompt at all: the built-in set.
    assert make(prompts=[" "]).split(". ", 1)[1] in DEFAULT_PROMPTS
    # A blank talking point is no talking point.
    assert make(talking_points=" \n - \n").split(". ", 1)[1] in DEFAULT_PROMPTS


@given(
    st.one_of(st.none(), st.integers(0, 5000)),
    st.one_of(st.none(), st.text(max_size=300)),
    st.one_of(st.none(), st.text(max_size=300)),
    st.one_of(st.none(), st.text(max_size=200)),
    st.lists(st.text(max_size=200), max_size=5),
)
def test_any_input_gives_a_short_opener(days, note, points, company, prompts):
    text = opener(
        days_silent=days,
        last_note=note,
        talking_points=points,
        company=company,
        prompts=prompts,
        key="k",
    )
    assert text and text == text.strip()
    assert len(text) <= 400
    assert "\n" not in text


def test_punctuation_only_notes_and_points_are_left_out() -> None:
    """A talking point of "." once crashed the opener (and so GET /stats) with an IndexError."""
    text = opener(
        days_silent=40, last_note=" . ", talking_points=".\n- \n!", company=None, prompts=["Hi?"]
    )
    assert text == "It's been 5 weeks since you spoke. Hi?"
