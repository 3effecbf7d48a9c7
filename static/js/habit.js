// The habit figures the phone works out itself, so they move the moment an outcome is tapped,
// offline too; and the conversation prompts. Pure functions (`now` is passed in), tested in
// tests/js/habit.test.mjs.
import { localDay, ordinal, weekday, toDate, atLocal, endOfLocalDay, addDays } from "./rules.js";

/** "4th try — keep going" (never a word about giving up); "" for no tries. */
export function persistenceText(n) {
  return Number.isInteger(n) && n > 0 ? `${ordinal(n)} try — keep going` : "";
}

/**
 * Today's calls, reached and promises kept (done today, on or before their due day) from the
 * phone's copy, with the definitions of GET /stats `today`. Instants are compared with the
 * edges of the local day (23 or 25 hours long across DST), so a log of 50,000 calls stays cheap.
 */
export function todayProgress({ touches, callbacks, now, timezone }) {
  const today = localDay(now, timezone);
  const start = atLocal(today, "00:00", timezone).getTime();
  const end = endOfLocalDay(today, timezone).getTime();
  const ms = (iso) => {
    const t = Date.parse(iso); // the API's ISO form, offset included; toDate for anything else
    return Number.isNaN(t) ? toDate(iso).getTime() : t;
  };
  // The date written in an ISO string is within a day of its local day anywhere (offsets are
  // under 24 h): most of the log is ruled out by a string comparison, without parsing.
  const [lo, hi] = [addDays(today, -1), addDays(today, 1)];
  const isToday = (iso) => {
    const d = String(iso).slice(0, 10);
    if (d < lo || d > hi) return false;
    const t = ms(iso);
    return t >= start && t < end;
  };
  let calls = 0;
  let reached = 0;
  let promisesKept = 0;
  for (const t of touches) {
    if (!isToday(t.happened_at)) continue;
    calls += 1;
    if (t.outcome === "reached") reached += 1;
  }
  for (const cb of callbacks) {
    if (cb.status === "done" && cb.done_at && isToday(cb.done_at) && ms(cb.due_at) >= start) promisesKept += 1;
  }
  return { calls, reached, promisesKept };
}

export function isWeekend(day) {
  return weekday(day) >= 5;
}

/**
 * The streak now: the last /stats answer gives the run up to yesterday, today's local count says
 * whether today joins it. Null when that answer is not for today, this goal and this weekend
 * rule: then no streak is shown rather than a made-up one. {days, metToday, counts, toGo}
 */
export function streakNow(stats, { now, timezone, calls, goal, weekends }) {
  const s = stats && stats.streak;
  const today = localDay(now, timezone);
  if (!s || stats.date !== today || s.goal !== goal || Boolean(s.weekends) !== Boolean(weekends)) return null;
  const counts = weekends || !isWeekend(today);
  const before = counts && s.met_today ? Math.max(0, s.days - 1) : s.days;
  const metToday = counts && calls >= goal;
  return { days: before + (metToday ? 1 : 0), metToday, counts, toGo: Math.max(0, goal - calls) };
}

/** "3-day streak · 6 calls to go", "· goal met today", "· weekends off", "Start a streak: …". */
export function streakText(s) {
  if (!s) return null;
  const run = `${s.days}-day streak`;
  if (!s.counts) return s.days ? `${run} · weekends off` : null;
  if (s.metToday) return `${run} · goal met today`;
  return s.days ? `${run} · ${plural(s.toGo, "call")} to go` : `Start a streak: ${plural(s.toGo, "call")} today`;
}

/** "78%"; "–" for a share of nothing (null). */
export function percent(share) {
  return share === null || share === undefined || Number.isNaN(share) ? "–" : `${Math.round(share * 100)}%`;
}

export function plural(n, one, many = `${one}s`) {
  return `${n} ${n === 1 ? one : many}`;
}

// Conversation prompts, shown when a client has no talking points. The built-in five are the
// server's DEFAULT_PROMPTS (webapp/services/accounts.py), for a phone that has not heard from /me.
export const DEFAULT_PROMPTS = Object.freeze([
  "How is the product working for you?",
  "Any questions since we last spoke?",
  "I came across something that might help…",
  "How is your new project going?",
  "Just checking in — how are you?",
]);
export const MAX_PROMPTS = 20;

export function repPrompts(me) {
  const list = ((me && me.prompts) || []).filter((p) => typeof p === "string" && p.trim());
  return list.length ? list : [...DEFAULT_PROMPTS];
}

/** What PATCH /me gets for an edited list: the non-blank prompts, or null (the built-in set). */
export function promptsToSave(values) {
  const list = values.map((v) => String(v).trim()).filter(Boolean).slice(0, MAX_PROMPTS);
  return !list.length || list.join("\n") === DEFAULT_PROMPTS.join("\n") ? null : list;
}
