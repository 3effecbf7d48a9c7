// The phone's own habit figures and prompt helpers (static/js/habit.js).
// Run with node's built-in runner: node --test tests/js/  (tests/unit/test_js_rules.py does it).

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  isWeekend,
  percent,
  persistenceText,
  plural,
  streakNow,
  streakText,
  todayProgress,
  DEFAULT_PROMPTS,
  MAX_PROMPTS,
  promptsToSave,
  repPrompts,
} from "../../static/js/habit.js";
import { localDay } from "../../static/js/rules.js";

describe("persistence in plain words", () => {
  test("ordinals, never giving up", () => {
    const cases = {
      1: "1st try — keep going",
      2: "2nd try — keep going",
      3: "3rd try — keep going",
      4: "4th try — keep going",
      11: "11th try — keep going",
      12: "12th try — keep going",
      13: "13th try — keep going",
      21: "21st try — keep going",
      22: "22nd try — keep going",
      23: "23rd try — keep going",
      101: "101st try — keep going",
      111: "111th try — keep going",
      112: "112th try — keep going",
    };
    for (const [n, text] of Object.entries(cases)) assert.equal(persistenceText(Number(n)), text);
    for (let n = 1; n < 200; n += 1) assert.doesNotMatch(persistenceText(n), /give up|stop|enough/i);
  });

  test("nothing to say without tries", () => {
    for (const n of [0, -1, null, undefined, 2.5, "3"]) assert.equal(persistenceText(n), "");
  });
});

const CHICAGO = "America/Chicago";
const touch = (happened_at, outcome = "no_answer") => ({ happened_at, outcome });
const cb = (due_at, status, done_at = null) => ({ due_at, status, done_at });

describe("today's progress from the local log", () => {
  test("calls and reached on the rep's local day only", () => {
    const now = new Date("2026-11-23T18:00:00Z"); // 12:00 in Chicago
    const touches = [
      touch("2026-11-23T06:30:00Z"), // 00:30 Chicago: today
      touch("2026-11-23T05:59:00Z", "reached"), // 23:59 yesterday in Chicago, today in UTC
      touch("2026-11-23T15:00:00-06:00", "reached"),
      touch("2026-11-24T05:00:00Z"), // 23:00 today in Chicago, tomorrow in UTC
      touch("2026-11-22T20:00:00Z", "reached"),
      touch("2026-11-24T01:00:00+14:00"), // written as the 24th, 05:00 today in Chicago
      touch("2026-11-22T20:00:00-11:00"), // written as the 22nd, 01:00 today in Chicago
      touch("2026-11-24T06:00:00+00:00"), // 00:00 tomorrow in Chicago
    ];
    assert.deepEqual(todayProgress({ touches, callbacks: [], now, timezone: CHICAGO }), {
      calls: 5,
      reached: 1,
      promisesKept: 0,
    });
  });

  test("promises kept today: done today, on or before the due day", () => {
    const now = new Date("2026-11-23T18:00:00Z");
    const callbacks = [
      cb("2026-11-23T15:00:00Z", "done", "2026-11-23T16:00:00Z"), // due today, done today
      cb("2026-11-26T15:00:00Z", "done", "2026-11-23T14:00:00Z"), // done early: kept
      cb("2026-11-23T20:00:00Z", "done", "2026-11-23T21:00:00Z"), // an hour late, same day: kept
      cb("2026-11-20T15:00:00Z", "done", "2026-11-23T16:00:00Z"), // done late: not kept
      cb("2026-11-23T15:00:00Z", "open"),
      cb("2026-11-23T15:00:00Z", "cancelled", "2026-11-23T16:00:00Z"),
      cb("2026-11-22T15:00:00Z", "done", "2026-11-22T16:00:00Z"), // kept, but yesterday
      cb("2026-11-23T15:00:00Z", "done", null), // no done_at: cannot be judged
    ];
    assert.equal(todayProgress({ touches: [], callbacks, now, timezone: CHICAGO }).promisesKept, 3);
  });

  test("a DST day: 25 hours long, all of them today", () => {
    // 2026-11-01 in Chicago runs from 05:00Z to 06:00Z the next day (clocks go back at 2:00).
    const now = new Date("2026-11-01T12:00:00Z");
    const touches = [
      touch("2026-11-01T05:00:00Z"),
      touch("2026-11-01T06:30:00Z"), // 01:30 CDT
      touch("2026-11-01T07:30:00Z"), // 01:30 CST, the repeated hour
      touch("2026-11-02T05:59:59Z"), // 23:59:59 CST
      touch("2026-11-02T06:00:00Z"), // midnight: the next day
      touch("2026-11-01T04:59:59Z"), // 23:59:59 CDT the day before
    ];
    assert.equal(todayProgress({ touches, callbacks: [], now, timezone: CHICAGO }).calls, 4);
  });

  test("the same as counting local days one by one, across zones and DST changes", () => {
    // Havana and Santiago change their clocks at midnight, Lord Howe by half an hour; Kiritimati
    // and Pago Pago are 25 hours apart.
    const zones = ["America/Havana", "America/Santiago", "Australia/Lord_Howe", "Pacific/Kiritimati", "Pacific/Pago_Pago", CHICAGO];
    const nows = ["2026-03-08T12:00:00Z", "2026-04-05T04:30:00Z", "2026-09-06T05:00:00Z", "2026-11-01T06:30:00Z"];
    let seed = 7;
    const random = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
    for (const timezone of zones) {
      for (const iso of nows) {
        const now = new Date(iso);
        const touches = Array.from({ length: 300 }, () => {
          const at = new Date(now.getTime() + (random() - 0.5) * 3 * 86400000);
          return touch(at.toISOString());
        });
        const naive = touches.filter((t) => localDay(new Date(t.happened_at), timezone) === localDay(now, timezone)).length;
        assert.equal(todayProgress({ touches, callbacks: [], now, timezone }).calls, naive, `${timezone} ${iso}`);
      }
    }
  });

  test("works on Map iterators, as the app passes them", () => {
    const now = new Date("2026-11-23T18:00:00Z");
    const touches = new Map([["a", touch("2026-11-23T17:00:00Z", "reached")]]);
    const got = todayProgress({ touches: touches.values(), callbacks: new Map().values(), now, timezone: CHICAGO });
    assert.deepEqual(got, { calls: 1, reached: 1, promisesKept: 0 });
  });
});

describe("the streak as of now", () => {
  const monday = new Date("2026-11-23T18:00:00Z");
  const saturday = new Date("2026-11-28T18:00:00Z");
  const stats = (over = {}) => ({
    date: "2026-11-23",
    streak: { days: 3, goal: 10, weekends: false, met_today: false, ...over },
  });
  const opts = (over = {}) => ({ now: monday, timezone: CHICAGO, calls: 4, goal: 10, weekends: false, ...over });

  test("unknown unless the answer is today's, for this goal and weekend rule", () => {
    assert.equal(streakNow(null, opts()), null);
    assert.equal(streakNow({ date: "2026-11-23" }, opts()), null);
    assert.equal(streakNow({ ...stats(), date: "2026-11-22" }, opts()), null);
    assert.equal(streakNow(stats({ goal: 8 }), opts()), null);
    assert.equal(streakNow(stats({ weekends: true }), opts()), null);
  });

  test("today joins the run once today's local count meets the goal", () => {
    assert.deepEqual(streakNow(stats(), opts()), { days: 3, metToday: false, counts: true, toGo: 6 });
    assert.deepEqual(streakNow(stats(), opts({ calls: 10 })), { days: 4, metToday: true, counts: true, toGo: 0 });
    assert.deepEqual(streakNow(stats(), opts({ calls: 14 })).days, 4);
  });

  test("the server already counted today: an undone call takes today back out", () => {
    assert.equal(streakNow(stats({ days: 4, met_today: true }), opts({ calls: 10 })).days, 4);
    assert.equal(streakNow(stats({ days: 4, met_today: true }), opts({ calls: 9 })).days, 3);
    assert.equal(streakNow(stats({ days: 1, met_today: true }), opts({ calls: 0 })).days, 0);
  });

  test("weekends off: a Saturday neither counts nor breaks", () => {
    const sat = { ...stats({ met_today: true }), date: "2026-11-28" };
    const got = streakNow(sat, opts({ now: saturday, calls: 12 }));
    assert.deepEqual(got, { days: 3, metToday: false, counts: false, toGo: 0 });
    const on = { ...stats({ weekends: true }), date: "2026-11-28" };
    assert.equal(streakNow(on, opts({ now: saturday, calls: 10, weekends: true })).days, 4);
  });

  test("in words", () => {
    assert.equal(streakText(null), null);
    assert.equal(streakText({ days: 3, metToday: false, counts: true, toGo: 6 }), "3-day streak · 6 calls to go");
    assert.equal(streakText({ days: 3, metToday: false, counts: true, toGo: 1 }), "3-day streak · 1 call to go");
    assert.equal(streakText({ days: 4, metToday: true, counts: true, toGo: 0 }), "4-day streak · goal met today");
    assert.equal(streakText({ days: 0, metToday: false, counts: true, toGo: 10 }), "Start a streak: 10 calls today");
    assert.equal(streakText({ days: 3, metToday: false, counts: false, toGo: 0 }), "3-day streak · weekends off");
    assert.equal(streakText({ days: 0, metToday: false, counts: false, toGo: 10 }), null);
  });

  test("weekends", () => {
    assert.deepEqual(["2026-11-27", "2026-11-28", "2026-11-29", "2026-11-30"].map(isWeekend), [false, true, true, false]);
  });
});

describe("numbers", () => {
  test("percent", () => {
    assert.equal(percent(0.775), "78%");
    assert.equal(percent(0), "0%");
    assert.equal(percent(1), "100%");
    assert.equal(percent(0.333), "33%");
    assert.equal(percent(null), "–");
    assert.equal(percent(undefined), "–");
  });

  test("plural", () => {
    assert.equal(plural(1, "call"), "1 call");
    assert.equal(plural(0, "call"), "0 calls");
    assert.equal(plural(2, "promise kept", "promises kept"), "2 promises kept");
  });
});

describe("prompts", () => {
  test("the rep's own, else the built-in five", () => {
    assert.equal(DEFAULT_PROMPTS.length, 5);
    assert.deepEqual(repPrompts(null), [...DEFAULT_PROMPTS]);
    assert.deepEqual(repPrompts({}), [...DEFAULT_PROMPTS]);
    assert.deepEqual(repPrompts({ prompts: [] }), [...DEFAULT_PROMPTS]);
    assert.deepEqual(repPrompts({ prompts: [" ", ""] }), [...DEFAULT_PROMPTS]);
    assert.deepEqual(repPrompts({ prompts: ["Mine"] }), ["Mine"]);
  });

  test("what an edited list sends", () => {
    assert.deepEqual(promptsToSave([" One ", "", "Two"]), ["One", "Two"]);
    assert.equal(promptsToSave(["", "  "]), null); // nothing left: the built-in set
    assert.equal(promptsToSave([...DEFAULT_PROMPTS]), null);
    assert.equal(promptsToSave(Array.from({ length: 30 }, (_, i) => `P${i}`)).length, MAX_PROMPTS);
  });
});
