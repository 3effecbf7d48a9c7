// The phone's scheduling rules (static/js/rules.js) against the shared vectors in
// tests/vectors/scheduling.json, the same file tests/unit/test_vectors.py runs against the Python.
// Run with node's built-in runner: node --test tests/js/
// Timestamps are compared as instants (epoch ms), never as strings.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";

import {
  atLocal,
  attemptsText,
  buildToday,
  effectiveCadence,
  formatDue,
  localDay,
  localTime,
  ordinal,
  parseHhmm,
  quickPicks,
  reasonText,
  suggestCallback,
  toDate,
} from "../../static/js/rules.js";

const VECTORS = JSON.parse(
  readFileSync(new URL("../vectors/scheduling.json", import.meta.url), "utf8"),
);

const ms = (value) => (value === null ? null : toDate(value).getTime());

test("the vector file has the three agreed sections", () => {
  assert.deepEqual(Object.keys(VECTORS).sort(), ["quick_picks", "suggest_callback", "today"]);
  for (const section of Object.values(VECTORS)) assert.ok(section.length > 0);
});

describe("suggest_callback vectors", () => {
  for (const c of VECTORS.suggest_callback) {
    test(c.description, () => {
      const got = suggestCallback({
        outcome: c.outcome,
        now: new Date(c.now),
        timezone: c.timezone,
        callTime: c.call_time,
        cadenceDays: c.cadence_days,
      });
      assert.equal(got === null ? null : got.getTime(), ms(c.expected));
    });
  }
});

describe("quick_picks vectors", () => {
  for (const c of VECTORS.quick_picks) {
    test(c.description, () => {
      const got = quickPicks({ now: new Date(c.now), timezone: c.timezone, callTime: c.call_time });
      assert.deepEqual(
        got.map((p) => [p.key, p.label, p.day, p.dueAt.getTime()]),
        c.expected.map((e) => [e.key, e.label, e.day, ms(e.due_at)]),
      );
    });
  }
});

describe("today vectors", () => {
  for (const c of VECTORS.today) {
    test(c.description, () => {
      const got = buildToday({
        now: c.now,
        timezone: c.timezone,
        callTime: c.call_time,
        reconnectAfterDays: c.reconnect_after_days,
        reconnectLimit: c.reconnect_limit,
        clients: c.clients,
        callbacks: c.callbacks,
      });
      assert.deepEqual(
        got.map((i) => [
          i.clientId,
          i.reason,
          i.dueAt === null ? null : i.dueAt.getTime(),
          i.overdue,
          i.daysOverdue,
          i.callbackId,
        ]),
        c.expected.map((e) => [
          e.client_id,
          e.reason,
          ms(e.due_at),
          e.overdue,
          e.days_overdue,
          e.callback_id,
        ]),
      );
    });
  }
});

describe("time zones", () => {
  test("a wall time in a spring-forward gap moves forward by the gap", () => {
    // Los Angeles jumps from 02:00 to 03:00 on 2026-03-08.
    assert.equal(atLocal("2026-03-08", "02:30", "America/Los_Angeles").toISOString(), "2026-03-08T10:30:00.000Z");
  });
  test("an ambiguous wall time gives its first occurrence", () => {
    // Los Angeles repeats 01:00-02:00 on 2026-11-01; the first 01:30 is still PDT (-07:00).
    assert.equal(atLocal("2026-11-01", "01:30", "America/Los_Angeles").toISOString(), "2026-11-01T08:30:00.000Z");
    // Auckland repeats 02:00-03:00 on 2026-04-05; the first 02:30 is NZDT (+13:00).
    assert.equal(atLocal("2026-04-05", "02:30", "Pacific/Auckland").toISOString(), "2026-04-04T13:30:00.000Z");
  });
  test("local day and time far from UTC", () => {
    const instant = new Date("2026-01-15T20:30:00Z");
    assert.equal(localDay(instant, "Pacific/Auckland"), "2026-01-16");
    assert.equal(localDay(instant, "America/Los_Angeles"), "2026-01-15");
    assert.equal(localTime(instant, "Pacific/Auckland"), "9:30");
    assert.equal(localTime(new Date("2026-01-15T00:05:00Z"), "UTC"), "0:05");
  });
  test("timestamps without an offset are refused", () => {
    assert.throws(() => toDate("2026-01-15T09:00:00"), RangeError);
    assert.equal(toDate("2026-01-15T09:00:00.123456+00:00").getTime(), Date.UTC(2026, 0, 15, 9, 0, 0, 123));
    const nine = Date.UTC(2026, 0, 15, 9, 0, 0);
    for (const text of ["2026-01-15T09:00:00Z", "2026-01-15t09:00:00z", "2026-01-15 10:00:00+01:00", "2026-01-15T10:00+0100", "2026-01-14T23:00:00-10:00"]) {
      assert.equal(toDate(text).getTime(), nine, text);
    }
    assert.throws(() => toDate("2026-01-15"), RangeError);
    assert.throws(() => toDate("yesterday"), RangeError);
  });
  test("call times must be HH:MM", () => {
    assert.deepEqual(parseHhmm("09:05"), { hour: 9, minute: 5 });
    for (const bad of ["9:00", "24:00", "09:00:00", "", null]) assert.throws(() => parseHhmm(bad), RangeError);
  });
  test("an unknown outcome is refused", () => {
    assert.throws(() => suggestCallback({ outcome: "busy", now: new Date(), timezone: "UTC" }), RangeError);
  });
});

describe("tiers and API objects", () => {
  test("tier tags give a cadence, the shortest winning; cadence_days wins over tags", () => {
    assert.equal(effectiveCadence(null, ["B"]), 90);
    assert.equal(effectiveCadence(null, ["tier c", "Tier:A"]), 30);
    assert.equal(effectiveCadence(null, ["tier-b", "vip"]), 90);
    assert.equal(effectiveCadence(null, ["tier a b", "vip"]), null);
    assert.equal(effectiveCadence(12, ["A"]), 12);
    assert.equal(effectiveCadence(null, ["A"], { A: 7 }), 7);
    assert.equal(effectiveCadence(null, ["A"], {}), null);
  });

  test("archived clients and closed callbacks stay off the list; tags set the rhythm", () => {
    const now = "2026-03-10T15:00:00Z"; // Tuesday in Chicago
    const clients = [
      { id: "a", created_at: "2025-01-01T00:00:00Z", last_touch_at: "2026-02-01T15:00:00Z", cadence_days: null, tags: ["A"], archived_at: null },
      { id: "b", created_at: "2025-01-01T00:00:00Z", last_touch_at: null, cadence_days: null, tags: [], archived_at: "2026-03-01T00:00:00Z" },
      { id: "c", created_at: "2025-01-01T00:00:00Z", last_touch_at: "2026-03-09T15:00:00Z", cadence_days: null, tags: [], archived_at: null },
      { id: "d", created_at: "2026-03-01T00:00:00Z", last_touch_at: null, cadence_days: null, tags: [], archived_at: null },
    ];
    const callbacks = [
      { id: "cb-b", client_id: "b", due_at: "2026-03-09T14:00:00Z", status: "open" },
      { id: "cb-c", client_id: "c", due_at: "2026-03-09T14:00:00Z", status: "done" },
    ];
    const got = buildToday({ now, timezone: "America/Chicago", clients, callbacks });
    assert.deepEqual(
      got.map((i) => [i.clientId, i.reason, i.daysOverdue]),
      [
        ["a", "cadence", 7], // Feb 1 + 30 days = Mar 3
        ["d", "reconnect", 0],
      ],
    );
  });
});

describe("plain words", () => {
  const tz = "America/Chicago";
  const now = new Date("2026-03-13T16:00:00Z"); // Friday 11:00 in Chicago (CDT, -05:00)

  test("an overdue promised callback names its day and time", () => {
    const item = { reason: "callback", dueAt: new Date("2026-03-12T14:00:00Z"), overdue: true, daysOverdue: 1 };
    assert.equal(reasonText(item, {}, { now, timezone: tz }), "Promised callback · yesterday 9:00 · overdue");
    const older = { reason: "callback", dueAt: new Date("2026-03-10T14:00:00Z"), overdue: true, daysOverdue: 3 };
    assert.equal(reasonText(older, {}, { now, timezone: tz }), "Promised callback · Tue 9:00 · overdue");
  });

  test("a callback later today says today", () => {
    const item = { reason: "callback", dueAt: new Date("2026-03-13T19:30:00Z"), overdue: false, daysOverdue: 0 };
    assert.equal(reasonText(item, {}, { now, timezone: tz }), "Promised callback · today 14:30");
  });

  test("cadence reasons name the rhythm", () => {
    const item = { reason: "cadence", overdue: true, daysOverdue: 12 };
    assert.equal(reasonText(item, { cadence_days: 30, tags: [] }, { now, timezone: tz }), "Monthly check-in · 12 days overdue");
    assert.equal(reasonText(item, { cadence_days: null, tags: ["A"] }, { now, timezone: tz }), "Monthly check-in · 12 days overdue");
    assert.equal(reasonText(item, { cadence_days: 7, tags: [] }, { now, timezone: tz }), "Weekly check-in · 12 days overdue");
    assert.equal(reasonText(item, { cadence_days: 14 }, { now, timezone: tz }), "Fortnightly check-in · 12 days overdue");
    assert.equal(reasonText(item, { cadence_days: null, tags: ["tier b"] }, { now, timezone: tz }), "Quarterly check-in · 12 days overdue");
    assert.equal(reasonText(item, { cadence_days: 10 }, { now, timezone: tz }), "Check-in every 10 days · 12 days overdue");
    const one = { reason: "cadence", overdue: true, daysOverdue: 1 };
    assert.equal(reasonText(one, { cadence_days: 30 }, { now, timezone: tz }), "Monthly check-in · 1 day overdue");
    const due = { reason: "cadence", overdue: false, daysOverdue: 0 };
    assert.equal(reasonText(due, { cadence_days: 30 }, { now, timezone: tz }), "Monthly check-in · due today");
  });

  test("reconnect reasons count the silence in the rep's days", () => {
    const item = { reason: "reconnect", dueAt: null, overdue: false, daysOverdue: 0 };
    // 2025-08-15 to 2026-03-13 is 210 days.
    const client = { last_touch_at: "2025-08-15T20:00:00-05:00" };
    assert.equal(reasonText(item, client, { now, timezone: tz }), "No contact for 210 days");
    assert.equal(reasonText(item, { last_touch_at: null }, { now, timezone: tz }), "Never contacted");
  });

  test("formatDue", () => {
    assert.equal(formatDue(new Date("2026-03-14T14:00:00Z"), { now, timezone: tz }), "tomorrow 9:00");
    assert.equal(formatDue(new Date("2026-03-17T14:00:00Z"), { now, timezone: tz }), "Tue 9:00");
    assert.equal(formatDue(new Date("2026-04-13T14:00:00Z"), { now, timezone: tz }), "Mon 13 Apr 9:00");
    assert.equal(formatDue(new Date("2027-01-04T15:00:00Z"), { now, timezone: tz }), "Mon 4 Jan 2027 9:00");
  });

  test("attempts since the rep last reached them", () => {
    assert.equal(attemptsText(0), "");
    assert.equal(attemptsText(1), "1st try since you last reached them");
    assert.equal(attemptsText(2), "2nd try since you last reached them");
    assert.equal(attemptsText(3), "3rd try since you last reached them");
    assert.equal(attemptsText(4), "4th try since you last reached them");
    assert.equal(attemptsText(11), "11th try since you last reached them");
    assert.equal(attemptsText(12), "12th try since you last reached them");
    assert.equal(attemptsText(13), "13th try since you last reached them");
    assert.equal(attemptsText(21), "21st try since you last reached them");
    assert.equal(attemptsText(null), "");
  });

  test("ordinals", () => {
    assert.deepEqual(
      [1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 101, 111, 112].map(ordinal),
      ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd", "101st", "111th", "112th"],
    );
  });
});
