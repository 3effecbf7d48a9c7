// Sync: send the outbox, then pull what changed elsewhere (`?updated_since=` a cursor that is the
// server's own latest timestamp, never this phone's clock).
import { api, getAll, NetworkError, ApiError } from "./api.js";
import { kv } from "./store.js";
import * as outbox from "./outbox.js";
import { state, mergeServer, setMe, setStats, changed, prefs } from "./data.js";
import { localDay } from "./rules.js";

const EPOCH = "1970-01-01T00:00:00+00:00";
// Rows committed a moment late can carry a timestamp just before the cursor: look back a little.
// Merging is idempotent, so seeing a row twice costs nothing.
const OVERLAP_MS = 10 * 1000;
const PULLS = [
  // [collection, path, the timestamp that moves when a row changes or arrives]
  ["clients", "/clients", "updated_at"],
  ["callbacks", "/callbacks", "updated_at"],
  ["touches", "/touches", "created_at"],
];

let running = null;
/** `pulled`: has this phone ever had the rep's data? (Until then an empty list means "wait".) */
export const syncState = { pulled: false };

export async function loadSyncState() {
  syncState.pulled = Boolean(await kv.get("cursor:clients"));
}

/** One round: outbox out, then changes in. Never throws; answers what happened. */
export function sync() {
  if (!running) running = round().finally(() => { running = null; });
  return running;
}

async function round() {
  try {
    const sent = await outbox.flush();
    if (sent === "unauthorized" || sent === "offline") return sent;
    // Local changes still waiting would be overwritten by the server's older copy: pull later.
    if (outbox.hasWaiting()) return "waiting";
    const fresh = await pull();
    // Not awaited: a sync asked for meanwhile (coming back to the app) must not wait on it.
    refreshStats({ maxAge: fresh ? 0 : STATS_MAX_AGE });
    return "ok";
  } catch (err) {
    if (err instanceof NetworkError) return "offline";
    if (err instanceof ApiError && err.status === 401) {
      outbox.hooks.unauthorized();
      return "unauthorized";
    }
    console.warn("sync failed", err);
    return "error";
  }
}

async function pull() {
  let any = false;
  const me = await api("GET", "/me");
  if (JSON.stringify(me) !== JSON.stringify(state.me)) {
    await setMe(me);
    any = true;
  }
  for (const [name, path, stamp] of PULLS) {
    const since = (await kv.get(`cursor:${name}`)) || EPOCH;
    let items;
    const from = since === EPOCH ? since : new Date(new Date(since).getTime() - OVERLAP_MS).toISOString();
    try {
      items = await getAll(path, { updated_since: from });
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) continue; // older server without it
      throw err;
    }
    if (!items.length) continue;
    // A change made here while we pulled must not be overwritten: skip this round's merge.
    if (outbox.hasWaiting()) return;
    if (await mergeServer(name, items)) any = true;
    let latest = since;
    for (const item of items) {
      if (item[stamp] && new Date(item[stamp]) > new Date(latest)) latest = item[stamp];
    }
    if (latest !== since) await kv.set(`cursor:${name}`, latest);
  }
  if (!syncState.pulled) {
    await kv.set("cursor:clients", (await kv.get("cursor:clients")) || EPOCH);
    syncState.pulled = true;
    any = true;
  }
  if (any) changed();
  return any;
}

// The last GET /stats answer is kept on the phone: the streak on today's screen, and the stats
// screen offline ("as of" its time), need it.
const STATS_MAX_AGE = 5 * 60 * 1000;
let statsRunning = null;
/** How the last fetch went: "ok", "offline", "missing" (an older server) or "error". */
export const statsState = { last: null };

/** Fetch /stats unless the kept answer is current and younger than `maxAge` ms. Never throws. */
export function refreshStats({ maxAge = 0 } = {}) {
  const kept = state.stats;
  const me = state.me || {};
  // Another day, goal or weekend rule makes an answer stale, however young.
  const current =
    kept &&
    Date.now() - new Date(kept.at).getTime() < maxAge &&
    kept.data.date === localDay(new Date(), prefs().timezone) &&
    kept.data.streak.goal === me.daily_goal &&
    kept.data.streak.weekends === Boolean(me.streak_weekends);
  if (current && navigator.onLine) statsState.last = "ok"; // only a fetch that worked moves `at`
  if ((current && navigator.onLine) || (maxAge && statsState.last === "missing")) return Promise.resolve(statsState.last);
  statsRunning = statsRunning || fetchStats().finally(() => { statsRunning = null; });
  return statsRunning;
}

async function fetchStats() {
  const before = [statsState.last, state.stats && JSON.stringify(state.stats.data)];
  let same = true;
  try {
    const data = await api("GET", "/stats");
    same = JSON.stringify(data) === before[1];
    await setStats(data);
    statsState.last = "ok";
  } catch (err) {
    if (err instanceof NetworkError) statsState.last = "offline";
    else statsState.last = err instanceof ApiError && err.status === 404 ? "missing" : "error";
  }
  if (!same || statsState.last !== before[0]) changed(); // the stats screen redraws itself
  return statsState.last;
}
