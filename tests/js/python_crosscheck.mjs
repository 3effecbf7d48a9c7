// Reads cases as JSON on stdin and answers what static/js/rules.js makes of them, as JSON on
// stdout. tests/unit/test_js_rules.py feeds it cases generated in Python and compares the answers
// with webapp/scheduling.py. Not a test file itself (node --test does not pick it up).

import { atLocal, buildToday, effectiveCadence, endOfLocalDay, localDay, quickPicks, suggestCallback } from "../../static/js/rules.js";

const ms = (d) => (d === null ? null : d.getTime());

function answer(c) {
  switch (c.kind) {
    case "at_local":
      return ms(atLocal(c.day, c.time, c.timezone));
    case "end_of_day":
      return ms(endOfLocalDay(c.day, c.timezone));
    case "local_day":
      return localDay(new Date(c.now), c.timezone);
    case "cadence":
      return effectiveCadence(c.cadence_days, c.tags, c.tiers);
    case "suggest":
      return ms(suggestCallback({ outcome: c.outcome, now: c.now, timezone: c.timezone, callTime: c.call_time, cadenceDays: c.cadence_days }));
    case "quick_picks":
      return quickPicks({ now: c.now, timezone: c.timezone, callTime: c.call_time }).map((p) => [p.key, p.label, p.day, ms(p.dueAt)]);
    case "today":
      return buildToday({
        now: c.now,
        timezone: c.timezone,
        callTime: c.call_time,
        reconnectAfterDays: c.reconnect_after_days,
        reconnectLimit: c.reconnect_limit,
        clients: c.clients,
        callbacks: c.callbacks,
      }).map((i) => [i.clientId, i.reason, ms(i.dueAt), i.overdue, i.daysOverdue, i.callbackId]);
    default:
      throw new Error(`unknown kind ${c.kind}`);
  }
}

let input = "";
process.stdin.setEncoding("utf8");
for await (const chunk of process.stdin) input += chunk;
const out = JSON.parse(input).map((c) => {
  try {
    return { ok: answer(c) };
  } catch (err) {
    return { error: String(err) };
  }
});
process.stdout.write(JSON.stringify(out));
