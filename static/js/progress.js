// The habit figures the phone works out itself, so they move the moment the rep taps an outcome,
// offline too: today's calls, reached and promises kept from the local call log, the streak from
// the last /stats answer plus today's local count, and the words for persistence. Pure functions
// (no DOM, no storage, no clock: `now` is passed in), tested in tests/js/progress.test.mjs.
import { localDay, ordinal, weekday, toDate } from "./rules.js";

/**
 * Attempts since the rep last reached a client, in plain words that never suggest giving up:
 * "" for none, "1st try — keep going", "4th try — keep going", "21st try — keep going".
 */
export function persistenceText(n) {
  if (!Number.isInteger(n) || n <= 0) return "";
  return `${ordinal(n)} try — keep going`;
}

/**
 * Today's figures from the phone's copy: calls logged on the rep's local today, how many of
 * them reached the client, and promises kept today (callbacks a call fulfilled today, on or
 * before their due day), the same definitions as GET /stats `today`.
 */
export function todayProgress({ touches, callbacks, now, timezone }) {
  const today = localDay(now, timezone);
  let calls = 0;
  let reached = 0;
  for (const t of touches) {
    if (localDay(toDate(t.happened_at, "happened_at"), timezone) !== today) continue;
    calls += 1;
    if (t.outcome === "reached") reached += 1;
  }
  let promisesKept = 0;
  for (const cb of callbacks) {
    if (cb.status !== "done" || !cb.done_at || !cb.due_at) continue;
    const done = localDay(toDate(cb.done_at, "done_at"), timezone);
    if (done === today && done <= localDay(toDate(cb.due_at, "due_at"), timezone)) promisesKept += 1;
  }
  return { calls, reached, promisesKept };
}

/** Saturday or Sunday. */
export function isWeekend(day) {
  return weekday(day) >= 5;
}

/**
 * The streak as of now: the last /stats answer gives the days up to yesterday, today's local
 * count says whether today joins them. Answers null when the answer cannot be trusted for today
 * (none yet, from another day, or made with another goal or weekend rule): the app then shows
 * no streak rather than a made-up one.
 *
 * {days, metToday, counts (today can count at all), toGo (calls still needed today)}
 */
export function streakNow(stats, { now, timezone, calls, goal, weekends }) {
  if (!stats || !stats.streak || typeof stats.streak.days !== "number") return null;
  const today = localDay(now, timezone);
  const { streak } = stats;
  if (stats.date !== today || streak.goal !== goal || Boolean(streak.weekends) !== Boolean(weekends)) return null;
  const counts = weekends || !isWeekend(today);
  const before = counts && streak.met_today ? Math.max(0, streak.days - 1) : streak.days;
  const metToday = counts && calls >= goal;
  return { days: before + (metToday ? 1 : 0), metToday, counts, toGo: Math.max(0, goal - calls) };
}

/** A share (0..1, or null) as a whole percentage: "78%", or "–" when there is nothing to share. */
export function percent(share) {
  if (share === null || share === undefined || Number.isNaN(share)) return "–";
  return `${Math.round(share * 100)}%`;
}

/** "1 call", "2 calls". */
export function plural(n, one, many = `${one}s`) {
  return `${n} ${n === 1 ? one : many}`;
}

/**
 * The streak in words for today's screen: "3-day streak · 6 calls to go",
 * "4-day streak · goal met today", "Start a streak: 10 calls today", "3-day streak · weekends
 * off". Null when the streak is not known (see streakNow).
 */
export function streakText(s) {
  if (!s) return null;
  const run = s.days > 0 ? `${s.days}-day streak` : "";
  if (!s.counts) return run ? `${run} · weekends off` : null;
  if (s.metToday) return `${run || "1-day streak"} · goal met today`;
  return run ? `${run} · ${plural(s.toGo, "call")} to go` : `Start a streak: ${plural(s.toGo, "call")} today`;
}
