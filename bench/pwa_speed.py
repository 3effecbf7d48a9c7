"""The phone app's two speed goals, measured in headless Chromium (Debian's, /usr/bin/chromium).

A rep with 200 clients (about 85 on today's list) logs in on a 390x844 phone, syncs, and then:

(a) Repeat start offline. The context goes offline (and /api/** is aborted), and the page is
    reloaded N times. Measured: from navigation start to the first row of today's list in the
    DOM (a MutationObserver installed by an init script, so the app needs no hook; an app mark
    "today-rendered" is used as well when the app sets one). Goal: under 300 ms. Baseline, from
    the same navigations: DOMContentLoaded, i.e. the static shell (HTML and modules) loaded from
    the service worker's cache, before any IndexedDB read.
(b) Tap on an outcome to screen updated. On the outcome sheet, a real tap (Playwright's click:
    pointer events through the DevTools protocol) on "Left message". Measured in the page: from
    the event's timestamp to the first DOM change, and to the next animation frame (the frame
    that paints it); and whether the change happened in the tap's own task, i.e. before any
    network or IndexedDB answer could have arrived. Baseline: a bare button added to the same
    page whose click handler only sets its text.

    .venv/bin/python bench/pwa_speed.py [--runs 20] [--taps 15] [--clients 200]

Prints medians (and p90) and the ratios. Figures are wall-clock on this machine; ratios travel.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from tests.browser.conftest import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    LiveServer,
    _phone_args,
    wait_until,
)
from webapp import create_app  # noqa: E402
from webapp.extensions import alembic  # noqa: E402

GOAL_MS = 300

# Installed before the app's own scripts on every navigation; runs outside the page's CSP.
PROBE = """
(() => {
  const bench = (window.__bench = { todayAt: null, todayRows: 0, tap: null, armed: null });
  const observer = new MutationObserver((records) => {
    const now = performance.now();
    if (bench.todayAt === null) {
      const rows = document.querySelectorAll(".today-list .row");
      if (rows.length) {
        bench.todayAt = now;
        bench.todayRows = rows.length;
      }
    }
    const tap = bench.armed;
    const scope = tap && tap.eventAt !== null && document.querySelector(tap.scope);
    if (scope && tap.mutationAt === null && records.some((r) => scope.contains(r.target))) {
      tap.mutationAt = now;
      tap.sameTask = tap.taskOpen;
      requestAnimationFrame((frame) => {
        tap.frameAt = performance.now();
        bench.tap = tap;
        bench.armed = null;
      });
    }
  });
  const options = { childList: true, subtree: true, attributes: true, characterData: true };
  observer.observe(document, options);
  addEventListener("click", (event) => {
    if (!bench.armed || bench.armed.eventAt !== null) return;
    const tap = bench.armed;
    tap.eventAt = event.timeStamp;
    tap.handlerAt = performance.now();
    tap.taskOpen = true;
    // A task queued now runs after this one: a DOM change seen before it belongs to the tap's task.
    const channel = new MessageChannel();
    channel.port1.onmessage = () => { tap.taskOpen = false; };
    channel.port2.postMessage(null);
  }, true);
})();
"""

# Arms the probe for one tap; only DOM changes inside ``scope`` (a selector) count.
ARM = """(scope) => {
  window.__bench.tap = null;
  window.__bench.armed = { scope, eventAt: null, handlerAt: null, mutationAt: null,
                           frameAt: null, taskOpen: false, sameTask: null };
}"""


def median(values: list[float]) -> float:
    return statistics.median(values)


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def start_server(folder: Path) -> LiveServer:
    url = f"sqlite:///{folder / 'bench.db'}"
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench"})
    with app.app_context():
        alembic.upgrade()
    app.extensions["sqlalchemy"].engine.dispose()
    return LiveServer(url, folder / "instance")


def seed(server: LiveServer, count: int):
    """A rep with ``count`` clients: promises overdue, check-ins due and not, never called."""
    rep = server.register_rep()
    now = datetime.now(UTC)
    for i in range(count):
        kind = i % 10
        fields = {"phone": f"+1312555{i:04d}", "company": f"Company {i % 37}"}
        if kind in (1, 2, 3):
            fields["tags"] = ["A"]  # monthly
        if kind in (4, 5, 6):
            fields["cadence_days"] = 30
        client = rep.add_client(f"Client {i:03d}", **fields)
        if kind == 0:  # a promise made three days ago, due yesterday
            rep.log_touch(
                client["id"],
                "left_message",
                happened_at=now - timedelta(days=3),
                callback_at=now - timedelta(days=1),
                callback_id=str(uuid.uuid4()),
            )
        elif kind in (1, 2, 3):  # monthly, last touched 40 days ago: 10 days overdue
            rep.log_touch(client["id"], "reached", happened_at=now - timedelta(days=40))
        elif kind in (4, 5, 6):  # monthly, touched 5 days ago: not due
            rep.log_touch(client["id"], "no_answer", happened_at=now - timedelta(days=5))
    return rep


def log_in(page, rep, expected_rows: int) -> None:
    page.goto("/")
    page.get_by_label("Email").fill(rep.email)
    page.get_by_label("Password").fill(rep.password)
    page.get_by_role("button", name="Log in").click()
    page.locator(".today-list .row").nth(expected_rows - 1).wait_for()
    wait_until(page, "() => navigator.serviceWorker.controller !== null")


def repeat_start_offline(page, context, runs: int, expected_rows: int) -> dict:
    context.set_offline(True)
    page.route("**/api/**", lambda route: route.abort())
    page.reload()  # one untimed start offline: caches and the worker are warm from here on
    page.locator(".today-list .row").first.wait_for()
    rendered, dcl, marks, rows = [], [], [], []
    for _ in range(runs):
        page.reload()
        result = wait_until(
            page,
            """() => {
                const b = window.__bench;
                const nav = performance.getEntriesByType("navigation")[0];
                if (!b || b.todayAt === null || !nav || !nav.domContentLoadedEventEnd) return null;
                const mark = performance.getEntriesByName("today-rendered")[0];
                return { todayAt: b.todayAt, rows: b.todayRows,
                         dcl: nav.domContentLoadedEventEnd, mark: mark ? mark.startTime : null };
            }""",
        )
        rendered.append(result["todayAt"])
        dcl.append(result["dcl"])
        rows.append(result["rows"])
        if result["mark"] is not None:
            marks.append(result["mark"])
    page.unroute("**/api/**")
    context.set_offline(False)
    assert min(rows) == expected_rows, f"rows rendered offline: {rows}, expected {expected_rows}"
    return {"rendered": rendered, "dcl": dcl, "marks": marks, "rows": rows[0]}


def measure_tap(page, locator, scope: str) -> dict:
    page.evaluate(ARM, scope)
    locator.click()
    return wait_until(page, "() => window.__bench.tap")


def tap_outcome(page, taps: int) -> dict:
    outcome, bare = [], []
    for _ in range(taps):
        page.goto("/#/today")
        page.locator(".today-list .row .row-main").first.click()
        page.get_by_role("button", name="Log a call").click()
        button = page.locator("#sheet").get_by_role("button", name="Left message")
        button.wait_for()
        outcome.append(measure_tap(page, button, "#sheet"))
        page.locator("#pick-summary").wait_for()
        page.locator("#sheet").get_by_role("button", name="Done").click()
    # The baseline: a bare button on the same page that only sets its own text.
    page.goto("/#/today")
    page.locator(".today-list .row").first.wait_for()
    page.evaluate(
        """() => {
            const b = document.createElement("button");
            b.id = "bench-bare";
            b.textContent = "bare";
            b.style.cssText = "position:fixed;top:0;left:0;z-index:99;padding:20px";
            let n = 0;
            b.addEventListener("click", () => { b.textContent = "bare " + ++n; });
            document.body.append(b);
        }"""
    )
    for _ in range(taps):
        bare.append(measure_tap(page, page.locator("#bench-bare"), "#bench-bare"))
    return {"outcome": outcome, "bare": bare}


def report_start(result: dict) -> None:
    rendered, dcl = result["rendered"], result["dcl"]
    print(f"(a) Repeat start offline, {len(rendered)} reloads, {result['rows']} rows on the list")
    print(
        f"    today's list rendered from IndexedDB: median {median(rendered):6.1f} ms, "
        f"p90 {p90(rendered):6.1f} ms   (goal < {GOAL_MS} ms: "
        f"{'met' if median(rendered) < GOAL_MS else 'NOT met'}; ratio to goal "
        f"{median(rendered) / GOAL_MS:.2f})"
    )
    if result["marks"]:
        print(f"    app mark 'today-rendered':           median {median(result['marks']):6.1f} ms")
    print(
        f"    baseline, shell from the worker (DOMContentLoaded): median {median(dcl):6.1f} ms, "
        f"p90 {p90(dcl):6.1f} ms"
    )
    print(f"    ratio list / shell: {median(rendered) / median(dcl):.2f}")


def report_taps(result: dict) -> None:
    def figures(taps: list[dict]) -> tuple[float, float, float]:
        mutation = [t["mutationAt"] - t["eventAt"] for t in taps]
        frame = [t["frameAt"] - t["eventAt"] for t in taps]
        same = sum(1 for t in taps if t["sameTask"])
        return median(mutation), median(frame), same

    o_mut, o_frame, o_same = figures(result["outcome"])
    b_mut, b_frame, b_same = figures(result["bare"])
    n = len(result["outcome"])
    print(f'(b) Tap on an outcome ("Left message") to screen updated, {n} taps')
    print(
        f"    outcome: to DOM change median {o_mut:5.1f} ms, to next frame {o_frame:5.1f} ms; "
        f"changed within the tap's own task {o_same}/{n} (no network or IndexedDB wait)"
    )
    print(
        f"    baseline, bare button: to DOM change {b_mut:5.1f} ms, to next frame "
        f"{b_frame:5.1f} ms; own task {b_same}/{len(result['bare'])}"
    )
    print(f"    ratio outcome / bare (to next frame): {o_frame / b_frame:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="offline reloads (a)")
    parser.add_argument("--taps", type=int, default=15, help="outcome taps (b)")
    parser.add_argument("--clients", type=int, default=200)
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} is missing: apt-get install -y chromium", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="touchbase-bench-") as tmp:
        server = start_server(Path(tmp))
        try:
            rep = seed(server, args.clients)
            expected_rows = len(rep.today()["items"])
            with sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
                )
                context = browser.new_context(**_phone_args(server.url))
                context.add_init_script(PROBE)
                page = context.new_page()
                log_in(page, rep, expected_rows)
                start = repeat_start_offline(page, context, args.runs, expected_rows)
                taps = tap_outcome(page, args.taps)
                browser.close()
        finally:
            server.stop()
    print(f"Chromium {CHROMIUM}, {args.clients} clients, phone 390x844, headless")
    report_start(start)
    report_taps(taps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
