"""The habit on the phone (issue 6): today's progress and streak, persistence in words, reasons
to call (talking points, prompts), and the stats screen, walked at 390x844 against the real API.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from playwright.sync_api import expect

from tests.browser.conftest import log_in, wait_until

SHOTS_ENV = "TOUCHBASE_SCREENSHOTS"
CHICAGO = ZoneInfo("America/Chicago")
NO_FIGURE = "\u2013"  # an en dash: a share of nothing
BUILT_IN_PROMPTS = [
    "How is the product working for you?",
    "Any questions since we last spoke?",
    "I came across something that might help…",
    "How is your new project going?",
    "Just checking in — how are you?",
]
# Dialling leaves for the phone app; in the tests a tel: link goes nowhere and the page stays.
STAY_ON_TEL = (
    "() => document.addEventListener('click', (e) => {"
    " if (e.target.closest('a[href^=\"tel:\"]')) e.preventDefault(); }, true)"
)
BACK_FROM_CALL = (
    "() => { Object.defineProperty(document, 'visibilityState', {value: 'visible',"
    " configurable: true}); document.dispatchEvent(new Event('visibilitychange')); }"
)

SCROLL_UNDER_TOPBAR = "(sel) => window.scrollTo(0, document.querySelector(sel).offsetTop - 60)"


def today() -> date:
    return datetime.now(CHICAGO).date()


def at(days_ago: int, hour: int = 12) -> datetime:
    """A local Chicago time ``days_ago`` days before today."""
    return datetime.combine(today() - timedelta(days=days_ago), time(hour), CHICAGO)


def pct(share: float | None) -> str:
    return NO_FIGURE if share is None else f"{round(share * 100)}%"


def seed_a_month(rep) -> dict:
    """A rep a few weeks in: tiers, kept and broken promises, a streak, persistence, silence."""
    rep.update_me(daily_goal=3, streak_weekends=True)
    now = datetime.now(UTC)
    dana = rep.add_client(
        "Dana Doe",
        phone="+13125550100",
        company="Acme Supply",
        talking_points="Asked about the spring price list.\nHer team moves warehouse in May.",
        tags=["Tier A"],
    )
    rep.log_touch(dana["id"], "reached", happened_at=now - timedelta(days=9), note="Send prices.")
    rep.add_callback(dana["id"], at(2, 9), happened_at=at(5, 10))  # broken, still open
    marco = rep.add_client("Marco Ruiz", phone="+13125550102", company="Ruiz Builders", tags=["A"])
    rep.log_touch(marco["id"], "reached", happened_at=now - timedelta(days=42))
    sam = rep.add_client("Sam Patel", phone="+13125550105", tags=["Tier A"])
    ben = rep.add_client("Ben Okafor", phone="+13125550106", company="Okafor & Sons", tags=["B"])
    rep.add_callback(ben["id"], at(3, 9), happened_at=at(6, 10))
    rep.log_touch(ben["id"], "reached", happened_at=at(3, 8))  # kept, on its day
    ana = rep.add_client("Ana Lima", phone="+13125550107", tags=["Tier B"])
    rep.add_callback(ana["id"], at(10, 9), happened_at=at(12, 10))
    rep.log_touch(ana["id"], "no_answer", happened_at=at(8, 10))  # kept two days late
    kim = rep.add_client("Kim Lee", phone="+13125550108", company="Lee Logistics", tags=["B"])
    for days_ago in (1, 2):  # the goal (3) met yesterday and the day before: a 2-day streak
        for hour in (9, 11, 15):
            rep.log_touch(kim["id"], "no_answer", happened_at=at(days_ago, hour))
    priya = rep.add_client(
        "Priya Shah", phone="+13125550103", company="Northwind Traders", tags=["C"]
    )
    rep.log_touch(
        priya["id"], "reached", happened_at=now - timedelta(days=260), note="Spring range"
    )
    for days in (230, 220, 215, 210):
        rep.log_touch(priya["id"], "no_answer", happened_at=now - timedelta(days=days))
    li = rep.add_client("Li Wei", phone="+13125550104", company="Blue Harbor Logistics")
    rep.log_touch(ana["id"], "no_answer", happened_at=now - timedelta(minutes=30))  # today: 1 call
    return {"dana": dana, "marco": marco, "sam": sam, "ben": ben, "ana": ana, "kim": kim,
            "priya": priya, "li": li}  # fmt: skip


def open_stats(page) -> None:
    page.get_by_role("link", name="Stats", exact=True).click()
    expect(page.locator("#screen-title")).to_have_text("Stats")
    expect(page.locator("#stats-freshness")).to_contain_text("Updated", timeout=20_000)


def test_a_new_rep_gets_empty_states_that_help(page, live_server, rep):
    log_in(page, rep)
    expect(page.locator(".progress")).to_contain_text("0 of 10 calls")
    expect(page.locator("#progress-more")).to_have_text("0 reached0 promises kept")
    open_stats(page)
    assert rep.api.get("/stats").json["today"]["calls"] == 0
    expect(page.locator("#today-calls")).to_have_text("0/10calls")
    expect(page.locator("#stats-coverage")).to_contain_text("Tag clients A, B or C to see coverage")
    expect(page.locator("#stats-promises")).to_contain_text("No callbacks were due")
    expect(page.locator("#stats-persistence")).to_contain_text("Nobody has 3 or more")
    expect(page.locator("#stats-inactive")).to_contain_text("Add or import your clients")
    expect(page.locator("#stats-weeks")).to_contain_text("starts with your first call")
    weekend = today().weekday() >= 5
    expect(page.locator("#stats-streak")).to_have_text(
        "Weekends don't count toward your streak." if weekend else "Start a streak: 10 calls today"
    )
    page.locator("#stats-coverage").get_by_role("link", name="Tag a client").click()
    expect(page.locator("#screen-title")).to_have_text("Clients")


def test_the_stats_screen_shows_what_the_api_says(page, live_server, rep):
    seeded = seed_a_month(rep)
    log_in(page, rep)
    # Today's screen: the local counts and the streak from the last /stats answer.
    expect(page.locator(".progress")).to_contain_text("1 of 3 calls")
    expect(page.locator("#streak")).to_have_text("2-day streak · 2 calls to go")
    open_stats(page)
    api = rep.api.get("/stats").json
    assert api["streak"]["days"] == 2 and api["today"]["calls"] == 1

    expect(page.locator("#today-calls strong")).to_have_text(f"{api['today']['calls']}/3")
    expect(page.locator("#today-reached strong")).to_have_text(str(api["today"]["reached"]))
    expect(page.locator("#today-kept strong")).to_have_text(str(api["today"]["promises_kept"]))

    tiers = {t["tier"]: t for t in api["coverage"]["tiers"]}
    a = tiers["A"]
    assert (a["clients"], a["within"]) == (3, 1)
    expect(page.locator("#coverage-headline")).to_contain_text(
        f"{pct(a['share'])}of A clients reached within 30 days{a['within']} of {a['clients']}"
    )
    for name, tier in tiers.items():
        row = page.locator(f"#tier-{name}")
        expect(row.locator(".tier-share")).to_have_text(pct(tier["share"]))
        expect(row.locator(".tier-count")).to_have_text(
            f"{tier['within']} of {tier['clients']} within their rhythm"
        )
    slipping_a = page.locator("#slipping-A")
    slipping_a.locator("summary").click()
    names = [s["client"]["name"] for s in a["slipping"]]
    assert set(names) == {"Marco Ruiz", "Sam Patel"}
    expect(slipping_a.locator(".stat-row .name")).to_have_text(names)
    expect(slipping_a.locator(".stat-row", has_text="Sam Patel")).to_contain_text("Never reached")
    expect(page.locator("#stats-coverage")).to_contain_text("1 client has no tier.")

    promises = api["promises"]
    assert (promises["due"], promises["kept"]) == (3, 1)
    expect(page.locator("#promises-headline")).to_contain_text(
        f"{pct(promises['share'])}of callbacks made by their day, last 30 days"
        f"{promises['kept']} of {promises['due']}"
    )
    broken = page.locator("#stats-promises .stat-row")
    expect(broken.locator(".name")).to_have_text([b["client"]["name"] for b in promises["broken"]])
    expect(broken.filter(has_text="Ana Lima")).to_contain_text("called 2 days late")
    expect(broken.filter(has_text="Dana Doe")).to_contain_text("2 days late")

    persistence = page.locator("#stats-persistence .stat-row")
    expect(persistence.locator(".name")).to_have_text(
        [p["client"]["name"] for p in api["persistence"]]
    )
    expect(persistence.filter(has_text="Kim Lee")).to_contain_text("6th try — keep going")
    expect(persistence.filter(has_text="Priya Shah")).to_contain_text("4th try — keep going")

    inactive = page.locator("#stats-inactive > .stat-list > .stat-row")  # the first five
    expect(inactive.locator(".name")).to_have_text(
        [i["client"]["name"] for i in api["inactive"][:5]]
    )
    expect(inactive.locator(".opener")).to_have_text([i["opener"] for i in api["inactive"][:5]])
    expect(inactive.first).to_contain_text("Never contacted")  # never touched come first
    more = page.locator("#stats-inactive details")
    expect(more.locator("summary")).to_have_text(f"Show {len(api['inactive']) - 5} more")
    more.locator("summary").click()
    expect(more.locator(".stat-row .name")).to_have_text(
        [i["client"]["name"] for i in api["inactive"][5:]]
    )

    weeks = api["weeks"]
    expect(page.locator("#week-calls td strong")).to_have_text(
        [str(weeks["this"]["calls"]), str(weeks["last"]["calls"])]
    )
    expect(page.locator("#week-reached td strong")).to_have_text(
        [str(weeks["this"]["reached"]), str(weeks["last"]["reached"])]
    )
    expect(page.locator("#week-coverage")).to_have_text(
        "Coverage now: "
        + " · ".join(f"{t} {pct(weeks['this']['coverage'][t])}" for t in ("A", "B", "C"))
    )

    # Offline: the last answer stays on screen, "as of" its time, and says it is not current.
    wait_until(page, "() => navigator.serviceWorker.controller !== null")
    page.context.set_offline(True)
    page.route("**/api/**", lambda route: route.abort())
    page.reload()
    expect(page.locator("#screen-title")).to_have_text("Stats")
    expect(page.locator("#stats-freshness")).to_have_text(
        re.compile(
            r"You're offline: these are your stats as of today \d+:\d\d\. They are not current\."
        )
    )
    expect(page.locator("#tier-A .tier-share")).to_have_text(pct(a["share"]))
    assert seeded["dana"]["id"]


def test_a_broken_promise_made_right_with_one_tap(page, live_server, rep):
    seeded = seed_a_month(rep)
    log_in(page, rep)
    open_stats(page)
    dana = page.locator("#stats-promises .stat-row", has_text="Dana Doe")
    dana.get_by_role("button", name="Call Dana Doe tomorrow instead").click()
    expect(dana).to_contain_text("Moved to tomorrow 9:00")
    expect(page.locator("#sync-status")).to_have_text("All saved", timeout=20_000)
    [promise] = [c for c in rep.callbacks("open") if c["client_id"] == seeded["dana"]["id"]]
    due = datetime.fromisoformat(promise["due_at"]).astimezone(CHICAGO)
    assert (due.date(), due.hour) == (today() + timedelta(days=1), 9)

    # The other way to make it right: call. Kim has no open promise; put one a day late.
    kim = seeded["kim"]
    late = rep.add_callback(kim["id"], at(1, 17), happened_at=at(1, 16))
    page.get_by_role("link", name="Today", exact=True).click()
    page.get_by_role("link", name="Stats", exact=True).click()
    kim_row = page.locator("#stats-promises .stat-row", has_text="Kim Lee")
    expect(kim_row).to_contain_text("1 day late", timeout=20_000)
    page.evaluate(STAY_ON_TEL)
    kim_row.get_by_role("link", name="Call Kim Lee").click()
    page.evaluate(BACK_FROM_CALL)
    expect(page.get_by_role("dialog")).to_contain_text("How did it go with Kim Lee?")
    page.get_by_role("button", name="Reached").click()
    page.get_by_role("button", name="Done").click()
    expect(kim_row).to_contain_text("Called — made right")
    expect(page.locator("#sync-status")).to_have_text("All saved", timeout=20_000)
    [kept] = [c for c in rep.callbacks(None) if c["id"] == late["id"]]
    assert kept["status"] == "done"
    assert rep.client(kim["id"])["attempts_since_reached"] == 0


def test_persistence_in_plain_words_with_ordinals(page, live_server, rep):
    tries = {"Two Tries": 2, "Three Tries": 3, "Eleven Tries": 11, "Twentyone Tries": 21}
    ids = {}
    for name, n in tries.items():
        client = rep.add_client(name, phone="+13125550120")
        ids[name] = client["id"]
        for _ in range(n):
            rep.log_touch(client["id"], "no_answer", happened_at=at(200))
    log_in(page, rep)
    rows = page.locator(".today-list .row")
    for name, text in (
        ("Two Tries", "2nd try — keep going"),
        ("Three Tries", "3rd try — keep going"),
        ("Eleven Tries", "11th try — keep going"),
        ("Twentyone Tries", "21st try — keep going"),
    ):
        expect(rows.filter(has_text=name).locator(".tries")).to_have_text(text)
    rows.filter(has_text="Three Tries").locator(".row-main").click()
    expect(page.locator(".card-head .tries")).to_have_text("3rd try — keep going")
    # One more unanswered call: the card counts on, with no talk of giving up.
    page.get_by_role("button", name="Log a call").click()
    page.get_by_role("button", name="No answer").click()
    page.get_by_role("button", name="Done").click()
    expect(page.locator(".card-head .tries")).to_have_text("4th try — keep going")
    open_stats(page)
    expect(page.locator("#stats-persistence .stat-row .name")).to_have_text(
        ["Twentyone Tries", "Eleven Tries", "Three Tries"]
    )
    expect(page.locator("#stats-persistence .stat-row", has_text="Three Tries")).to_contain_text(
        "4th try — keep going"
    )
    assert "give up" not in page.locator("#view").inner_text().lower()


def test_talking_point_jotted_offline_in_the_sheet_reaches_the_server(page, live_server, rep):
    ola = rep.add_client("Ola Nordmann", phone="+13125550130")
    log_in(page, rep)
    wait_until(page, "() => navigator.serviceWorker.controller !== null")
    expect(page.locator("#sync-status")).to_have_text("All saved", timeout=20_000)
    page.locator(".today-list .row .row-main").click()
    # No talking points yet: the rep's prompts give a reason to call.
    prompts = page.locator(".prompts .prompt-list li")
    expect(prompts).to_have_text(BUILT_IN_PROMPTS)

    page.context.set_offline(True)
    page.route("**/api/**", lambda route: route.abort())
    page.get_by_role("button", name="Log a call").click()
    page.get_by_role("button", name="Left message").click()
    page.get_by_label("Talking points for next time").fill("Ask how the warehouse move went")
    page.get_by_role("button", name="Done").click()
    expect(page.locator("#talking-points")).to_have_text("Ask how the warehouse move went")
    expect(page.locator("#sync-status")).to_have_text("2 changes waiting to sync")
    page.get_by_role("link", name="Today", exact=True).click()
    page.get_by_role("link", name="Clients", exact=True).click()
    page.get_by_role("link", name=re.compile("Ola Nordmann")).click()
    expect(page.locator("#talking-points")).to_have_text("Ask how the warehouse move went")

    page.unroute("**/api/**")
    page.context.set_offline(False)
    expect(page.locator("#sync-status")).to_have_text("All saved", timeout=20_000)
    assert rep.client(ola["id"])["talking_points"] == "Ask how the warehouse move went"
    assert [t["outcome"] for t in rep.touches(ola["id"])] == ["left_message"]

    # Next call: the sheet starts from those points; crossing one off saves the rest.
    page.get_by_role("button", name="Log a call").click()
    page.get_by_role("button", name="Reached").click()
    talk = page.get_by_label("Talking points for next time")
    expect(talk).to_have_value("Ask how the warehouse move went")
    talk.fill("Send the autumn catalogue")
    page.get_by_role("button", name="Undo").click()  # the call is taken back, the point stays
    expect(page.locator("#talking-points")).to_have_text("Send the autumn catalogue")
    expect(page.locator("#sync-status")).to_have_text("All saved", timeout=20_000)
    assert rep.client(ola["id"])["talking_points"] == "Send the autumn catalogue"
    assert len(rep.touches(ola["id"])) == 1


def test_settings_for_the_habit_and_prompts(page, live_server, rep):
    rep.add_client("Ola Nordmann", phone="+13125550130")
    log_in(page, rep)
    page.get_by_role("link", name="Settings", exact=True).click()
    page.get_by_label("Daily goal (calls)").fill("12")
    page.get_by_label("Weekends count toward my streak").check()
    page.get_by_label("Tier A").fill("14")
    page.get_by_label("Tier B").fill("60")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#sync-status")).to_have_text("All saved", timeout=20_000)
    me = rep.me()
    assert (me["daily_goal"], me["streak_weekends"]) == (12, True)
    assert me["tiers"] == {"A": 14, "B": 60, "C": 180}
    # The streak on today's screen follows the new goal once /stats has answered for it.
    page.get_by_role("link", name="Today", exact=True).click()
    page.evaluate("() => document.dispatchEvent(new Event('visibilitychange'))")
    expect(page.locator("#streak")).to_have_text("Start a streak: 12 calls today")
    page.get_by_role("link", name="Settings", exact=True).click()

    editor = page.locator("#prompt-editor li")
    expect(editor.locator("textarea")).to_have_count(5)
    editor.nth(0).locator("textarea").fill("How did the trade show go?")
    editor.nth(4).get_by_role("button", name="Remove this prompt").click()
    page.get_by_role("button", name="Add a prompt").click()
    page.locator("#prompt-editor li").last.locator("textarea").fill("Have you seen the new range?")
    page.get_by_role("button", name="Save prompts").click()
    expect(page.locator("#sync-status")).to_have_text("All saved", timeout=20_000)
    mine = ["How did the trade show go?", *BUILT_IN_PROMPTS[1:4], "Have you seen the new range?"]
    assert rep.me()["prompts"] == mine

    page.get_by_role("link", name="Clients", exact=True).click()
    page.get_by_role("link", name=re.compile("Ola Nordmann")).click()
    expect(page.locator(".prompts .prompt-list li")).to_have_text(mine)

    page.get_by_role("link", name="Settings", exact=True).click()
    expect(page.locator("#prompt-editor li textarea")).to_have_count(5)
    expect(page.locator("#prompt-editor li textarea").first).to_have_value(mine[0])
    page.get_by_role("button", name="Use the built-in prompts").click()
    expect(page.locator("#sync-status")).to_have_text("All saved", timeout=20_000)
    assert rep.me()["prompts"] == BUILT_IN_PROMPTS
    expect(page.locator("#prompt-editor li textarea").first).to_have_value(BUILT_IN_PROMPTS[0])
    # The settings survive a reload (they come back from the server).
    page.reload()
    expect(page.get_by_label("Weekends count toward my streak")).to_be_checked()
    expect(page.get_by_label("Tier A")).to_have_value("14")


def test_today_counts_move_at_once_and_the_streak_follows(page, live_server, rep):
    seed_a_month(rep)
    log_in(page, rep)
    expect(page.locator("#streak")).to_have_text("2-day streak · 2 calls to go")
    page.evaluate(STAY_ON_TEL)
    for name, outcome in (("Dana Doe", "Reached"), ("Marco Ruiz", "No answer")):
        row = page.locator(".today-list .row", has_text=name)
        row.get_by_role("link", name=f"Call {name}").click()
        page.evaluate(BACK_FROM_CALL)
        page.get_by_role("button", name=outcome).click()
        page.get_by_role("button", name="Done").click()
    # Dana's call kept her (late) promise: not "kept" today. The figures moved before any sync.
    expect(page.locator(".progress")).to_contain_text("3 of 3 calls")
    expect(page.locator("#progress-more")).to_have_text("1 reached0 promises kept")
    expect(page.locator("#streak")).to_have_text("3-day streak · goal met today")
    expect(page.locator("#sync-status")).to_have_text("All saved", timeout=20_000)
    api = rep.api.get("/stats").json
    assert (api["today"]["calls"], api["today"]["reached"], api["streak"]["days"]) == (3, 1, 3)


def test_stats_screenshots(page, live_server, rep, tmp_path):
    shots = Path(os.environ.get(SHOTS_ENV) or tmp_path)
    seed_a_month(rep)
    log_in(page, rep)
    expect(page.locator("#streak")).to_be_visible(timeout=20_000)
    page.screenshot(path=tmp_path / "today-progress.png")
    open_stats(page)
    page.screenshot(path=shots / "stats.png")
    for card, name in (("#stats-promises", "stats-promises"), ("#stats-inactive", "stats-quiet")):
        page.evaluate(SCROLL_UNDER_TOPBAR, card)
        page.screenshot(path=shots / f"{name}.png")
    page.screenshot(path=tmp_path / "stats-full.png", full_page=True)
    if os.environ.get("STATS_FULL"):
        page.screenshot(path=Path(os.environ["STATS_FULL"]), full_page=True)
