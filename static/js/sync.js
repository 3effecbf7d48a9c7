// Sync: send the outbox, then pull what changed elsewhere (`?updated_since=` a cursor that is the
// server's own latest timestamp, never this phone's clock).
import { api, getAll, NetworkError, ApiError } from "./api.js";
import { kv } from "./store.js";
import * as outbox from "./outbox.js";
import { state, mergeServer, setMe, changed } from "./data.js";

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
    await pull();
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
}
