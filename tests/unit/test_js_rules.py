"""Run the phone app's JavaScript tests (tests/js/, node's built-in runner) as part of pytest.

static/js/rules.js is the phone's copy of webapp/scheduling.py; tests/js/rules.test.mjs runs it
against the same vectors as tests/unit/test_vectors.py. Running it here puts it in the README's
single test command. A missing node is a failure, not a skip: `python3 manage.py test` installs
it, so a machine without it is a broken setup that must not pass quietly.
"""

from __future__ import annotations

import functools
import json
import random
import shutil
import subprocess
import uuid
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from webapp import pwa, scheduling

ROOT = Path(__file__).resolve().parents[2]


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail(
            "node is not installed, so the phone's scheduling rules (tests/js/) cannot run. "
            "Install Node.js 20+ (`apt-get install -y nodejs`; `python3 manage.py test` does it "
            "when run as root).",
            pytrace=False,
        )
    return node


@functools.cache
def _served_shell() -> pwa.Shell:
    return pwa.build_shell(pwa.DEFAULT_STATIC)


@pytest.mark.parametrize("as_served", [False, True], ids=["source", "served"])
@pytest.mark.parametrize(
    "path",
    sorted(
        str(p.relative_to(ROOT))
        for folder in ("static/js", "service_worker")
        for p in (ROOT / folder).rglob("*.js")
    ),
)
def test_shell_module_parses(path: str, as_served: bool) -> None:
    """Every module of the app shell is valid JavaScript, as written and as served (minified,
    webapp/js_minify.py): one syntax error blanks the whole app."""
    source = (ROOT / path).read_text(encoding="utf-8")
    if as_served:
        shell = _served_shell()
        if path == "service_worker/sw.js":
            source = shell.sw_js.decode("utf-8")
        else:
            source = shell.assets[path.removeprefix("static/")].decode("utf-8")
    result = subprocess.run(
        [_node(), "--check", "--input-type=module"],
        input=source,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"{path} does not parse:\n{result.stderr[-2000:]}"


def test_node_rules_suite() -> None:
    """tests/js/*.test.mjs: the shared vectors and the plain-words helpers, in node."""
    node = _node()
    # The files by name, not the folder: node 21+ reads the arguments of --test as globs.
    files = sorted(
        str(path.relative_to(ROOT)) for path in (ROOT / "tests" / "js").glob("*.test.mjs")
    )
    assert files, "no tests/js/*.test.mjs files found"
    result = subprocess.run(
        [node, "--test", *files],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    summary = [line for line in result.stdout.splitlines() if line.startswith("# ")]
    assert result.returncode == 0, (
        f"node --test {' '.join(files)} failed (exit {result.returncode}):\n"
        f"{result.stdout[-8000:]}\n{result.stderr[-2000:]}"
    )
    # A run that found no test files must not pass either.
    assert any(line.startswith("# pass ") and line != "# pass 0" for line in summary), (
        result.stdout[-4000:]
    )


# Zones far from UTC, with DST gaps and overlaps at 00:00, 01:00, 02:00 and 03:00, half-hour DST
# (Lord Howe), a 45-minute offset (Chatham) and +14/-11. Rules settled years ago, so the tz data
# of node's ICU and of Python agree on them.
CROSSCHECK_ZONES = (
    "America/Los_Angeles",
    "America/Chicago",
    "America/St_Johns",
    "America/Havana",
    "America/Santiago",
    "Pacific/Auckland",
    "Pacific/Chatham",
    "Australia/Lord_Howe",
    "Asia/Jerusalem",
    "Europe/London",
    "Europe/Berlin",
    "Asia/Kolkata",
    "Pacific/Kiritimati",
    "Pacific/Pago_Pago",
    "UTC",
)
START = datetime(2024, 1, 1, tzinfo=UTC)
END = datetime(2028, 1, 1, tzinfo=UTC)


def _ms(value: datetime | None) -> int | None:
    return None if value is None else round(value.timestamp() * 1000)


def _iso(rng: random.Random, value: datetime) -> str:
    """The instant as API.md sends it, in a random zone, so the offsets vary."""
    return value.astimezone(ZoneInfo(rng.choice(CROSSCHECK_ZONES))).isoformat()


def _transition_days(tz: ZoneInfo) -> list[date]:
    """Local days (and the day before) on which the zone's UTC offset changes, 2024-2027."""
    days = []
    at = START
    while at < END:
        nxt = at + timedelta(days=1)
        if at.astimezone(tz).utcoffset() != nxt.astimezone(tz).utcoffset():
            day = at.astimezone(tz).date()
            days += [day, day + timedelta(days=1)]
        at = nxt
    return days


def _random_instant(rng: random.Random) -> datetime:
    span = int((END - START).total_seconds() * 1000)
    return START + timedelta(milliseconds=rng.randrange(span))


def _crosscheck_cases(rng: random.Random) -> list[tuple[dict[str, Any], Any]]:
    """Cases for python_crosscheck.mjs, each with the answer of webapp/scheduling.py."""
    cases: list[tuple[dict[str, Any], Any]] = []
    for name in CROSSCHECK_ZONES:
        tz = ZoneInfo(name)
        for day in _transition_days(tz):
            for minutes in range(0, 24 * 60, 15):
                at = time(minutes // 60, minutes % 60)
                case = {"kind": "at_local", "day": day.isoformat(), "time": f"{at:%H:%M}"}
                cases.append(({**case, "timezone": name}, _ms(scheduling.at_local(day, at, tz))))
            end = scheduling.end_of_local_day(day, tz)
            cases.append(
                ({"kind": "end_of_day", "day": day.isoformat(), "timezone": name}, _ms(end))
            )
            # Instants either side of the change, an hour apart.
            noon = scheduling.at_local(day, time(12, 0), tz)
            for hours in range(-14, 14):
                now = noon + timedelta(hours=hours)
                local = scheduling.local_today(now, tz).isoformat()
                cases.append(({"kind": "local_day", "now": _ms(now), "timezone": name}, local))
    for _ in range(600):
        name = rng.choice(CROSSCHECK_ZONES)
        tz = ZoneInfo(name)
        now = _random_instant(rng)
        call_time = rng.choice(["09:00", "00:00", "00:15", "01:30", "02:30", "03:00", "23:45"])
        outcome = rng.choice(scheduling.OUTCOMES)
        cadence = rng.choice([None, 1, 2, 5, 7, 30, 31, 90, 365])
        got = scheduling.suggest_callback(
            outcome, now, tz, scheduling.parse_hhmm(call_time), cadence
        )
        case = {"kind": "suggest", "outcome": outcome, "now": _iso(rng, now), "timezone": name}
        cases.append(({**case, "call_time": call_time, "cadence_days": cadence}, _ms(got)))
    for _ in range(300):
        name = rng.choice(CROSSCHECK_ZONES)
        tz = ZoneInfo(name)
        now = _random_instant(rng)
        call_time = rng.choice(["09:00", "00:30", "02:30", "17:00"])
        picks = scheduling.quick_picks(now, tz, scheduling.parse_hhmm(call_time))
        expected = [[p.key, p.label, p.day.isoformat(), _ms(p.due_at)] for p in picks]
        case = {"kind": "quick_picks", "now": _iso(rng, now), "timezone": name}
        cases.append(({**case, "call_time": call_time}, expected))
    tag_words = ["A", "b", "tier c", "Tier:A", "tier-b", "tier_c", "tierA", "vip", "tier a b", "D"]
    for _ in range(200):
        tags = rng.sample(tag_words, rng.randrange(4))
        tiers = rng.choice([None, {}, {"A": 7, "B": 14, "C": 60}, {"A": 30, "D": 5}])
        cadence = rng.choice([None, None, 12])
        got = scheduling.effective_cadence(cadence, tags, tiers)
        case = {"kind": "cadence", "cadence_days": cadence, "tags": tags, "tiers": tiers}
        cases.append((case, got))
    for _ in range(300):
        cases.append(_today_case(rng))
    return cases


def _today_case(rng: random.Random) -> tuple[dict[str, Any], Any]:
    """A random rep's clients and callbacks, as the API hands them to the phone."""
    name = rng.choice(CROSSCHECK_ZONES)
    tz = ZoneInfo(name)
    now = _random_instant(rng)
    call_time = rng.choice(["09:00", "02:30", "00:00"])
    # Few distinct instants, so ties (decided by id) happen.
    near = [now + timedelta(hours=rng.randrange(-24 * 400, 24 * 3)) for _ in range(6)]
    clients, callbacks = [], []
    for _ in range(rng.randrange(12)):
        touched = rng.random() < 0.7
        clients.append(
            {
                "id": str(uuid.UUID(int=rng.getrandbits(128))),
                "created_at": rng.choice(near) - timedelta(days=rng.choice([0, 500])),
                "last_touch_at": rng.choice(near) if touched else None,
                "cadence_days": rng.choice([None, None, 1, 7, 30, 90]),
                "tags": rng.sample(["A", "B", "C", "x"], rng.randrange(3)),
                "archived_at": now if rng.random() < 0.1 else None,
            }
        )
    for client in clients:
        for _ in range(rng.choice([0, 0, 1, 2])):
            callbacks.append(
                {
                    "id": str(uuid.UUID(int=rng.getrandbits(128))),
                    "client_id": client["id"],
                    "due_at": rng.choice(near) + timedelta(days=rng.choice([0, 1, 5, 400])),
                    "status": rng.choice(["open", "open", "open", "done", "cancelled"]),
                }
            )
    reconnect_after = rng.choice([1, 30, 90])
    limit = rng.choice([0, 2, 5])
    # What services/today.py does: drop archived clients and closed callbacks, resolve cadences.
    active = {c["id"]: c for c in clients if c["archived_at"] is None}
    open_cbs = [cb for cb in callbacks if cb["status"] == "open" and cb["client_id"] in active]
    with_callback = {cb["client_id"] for cb in open_cbs}
    facts = [
        scheduling.ClientFacts(
            id=c["id"],
            created_at=c["created_at"],
            last_touch_at=c["last_touch_at"],
            cadence_days=scheduling.effective_cadence(c["cadence_days"], c["tags"]),
            has_open_callback=c["id"] in with_callback,
        )
        for c in active.values()
    ]
    items = scheduling.build_today(
        now,
        tz,
        facts,
        [scheduling.CallbackFacts(cb["id"], cb["client_id"], cb["due_at"]) for cb in open_cbs],
        reconnect_after_days=reconnect_after,
        call_time=scheduling.parse_hhmm(call_time),
        reconnect_limit=limit,
    )
    expected = [
        [i.client_id, i.reason, _ms(i.due_at), i.overdue, i.days_overdue, i.callback_id]
        for i in items
    ]

    def api(obj: dict[str, Any]) -> dict[str, Any]:
        return {k: _iso(rng, v) if isinstance(v, datetime) else v for k, v in obj.items()}

    case = {
        "kind": "today",
        "now": _iso(rng, now),
        "timezone": name,
        "call_time": call_time,
        "reconnect_after_days": reconnect_after,
        "reconnect_limit": limit,
        "clients": [api(c) for c in clients],
        "callbacks": [api(cb) for cb in callbacks],
    }
    return case, expected


def test_js_matches_python_on_generated_cases() -> None:
    """Thousands of generated cases, DST days of many zones included: both ports agree."""
    node = _node()
    cases = _crosscheck_cases(random.Random(20260126))
    result = subprocess.run(
        [node, "tests/js/python_crosscheck.mjs"],
        cwd=ROOT,
        input=json.dumps([case for case, _ in cases]),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    answers = json.loads(result.stdout)
    assert len(answers) == len(cases)
    wrong = [
        (case, expected, got)
        for (case, expected), got in zip(cases, answers, strict=True)
        if got != {"ok": expected}
    ]
    shown = "\n".join(f"{c}\n  python: {e}\n  js:     {g}" for c, e, g in wrong[:5])
    assert not wrong, f"{len(wrong)} of {len(cases)} cases differ, e.g.:\n{shown}"
