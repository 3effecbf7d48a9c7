// The rep's data in memory, mirrored to IndexedDB. Screens render from here synchronously;
// local changes (a logged call, an edited client) apply here first, then go to the outbox.
import { all, put, putMany, del, clear, kv } from "./store.js";
import { buildToday, localDay, DEFAULT_TIERS } from "./rules.js";

export const state = {
  me: null,
  clients: new Map(),
  callbacks: new Map(),
  touches: new Map(),
  stats: null, // the last GET /stats answer: {data, at (when it was fetched, ISO)}, or null
};

const listeners = new Set();

/** Call `fn` after every change of the data (screens re-render). */
export function onChange(fn) {
  listeners.add(fn);
}

export function changed() {
  for (const fn of listeners) fn();
}

/** Load everything from IndexedDB into memory (a rep has hundreds of records, not millions). */
export async function loadLocal() {
  const [me, clients, callbacks, touches, stats] = await Promise.all([
    kv.get("me"),
    all("clients"),
    all("callbacks"),
    all("touches"),
    kv.get("stats"),
  ]);
  state.me = me || null;
  state.stats = stats || null;
  state.clients = new Map(clients.map((c) => [c.id, c]));
  state.callbacks = new Map(callbacks.map((c) => [c.id, c]));
  state.touches = new Map(touches.map((t) => [t.id, t]));
}

export async function setMe(me) {
  state.me = me;
  await kv.set("me", me);
}

/** Forget every local record (log out, or another rep logging in on this phone). */
export async function forgetAll() {
  state.me = null;
  state.stats = null;
  state.clients.clear();
  state.callbacks.clear();
  state.touches.clear();
  await Promise.all(["clients", "callbacks", "touches", "kv", "outbox"].map((s) => clear(s)));
}

/** Keep the server's stats answer (memory and IndexedDB), stamped with when it was fetched. */
export async function setStats(data, at = new Date().toISOString()) {
  state.stats = { data, at };
  await kv.set("stats", state.stats);
}

export function prefs() {
  const me = state.me || {};
  return {
    timezone: me.timezone || Intl.DateTimeFormat().resolvedOptions().timeZone,
    callTime: me.call_time || "09:00",
    tiers: me.tiers || DEFAULT_TIERS,
  };
}

export function activeClients() {
  return [...state.clients.values()].filter((c) => !c.archived_at);
}

export function openCallbacks() {
  return [...state.callbacks.values()].filter((c) => c.status === "open");
}

/** Today's list, computed here with the same rules as the server. */
export function todayList(now = new Date()) {
  const me = state.me || {};
  const { timezone, callTime, tiers } = prefs();
  return buildToday({
    now,
    timezone,
    callTime,
    tiers,
    reconnectAfterDays: me.reconnect_after_days || 90,
    clients: activeClients(),
    callbacks: openCallbacks(),
  });
}

/** Calls logged on the rep's local today (any device that has synced, and this one). */
export function doneToday(now = new Date()) {
  const { timezone } = prefs();
  const today = localDay(now, timezone);
  let n = 0;
  for (const t of state.touches.values()) {
    if (localDay(new Date(t.happened_at), timezone) === today) n += 1;
  }
  return n;
}

export function touchesFor(clientId) {
  return [...state.touches.values()]
    .filter((t) => t.client_id === clientId)
    .sort((a, b) => new Date(b.happened_at) - new Date(a.happened_at));
}

function later(a, b) {
  if (!a) return b;
  if (!b) return a;
  return new Date(a) >= new Date(b) ? a : b;
}

/**
 * Apply a call the rep just logged, as the server will: it keeps the client's open promises,
 * moves the attempt count, and opens the new promise. Returns what `revertTouch` needs.
 * Synchronous: the screen can be redrawn before anything is written.
 */
export function applyTouch(touch) {
  const client = state.clients.get(touch.client_id);
  const before = {
    client: client ? { ...client } : null,
    callbacks: openCallbacks().filter((c) => c.client_id === touch.client_id).map((c) => ({ ...c })),
    touch,
  };
  const now = new Date().toISOString();
  for (const cb of openCallbacks()) {
    if (cb.client_id === touch.client_id) {
      // done_at as the server sets it (the call's time): today's "promises kept" counts it at once.
      state.callbacks.set(cb.id, { ...cb, status: "done", done_at: touch.happened_at, updated_at: now });
    }
  }
  if (client) {
    const updated = { ...client, last_touch_at: later(client.last_touch_at, touch.happened_at) };
    if (touch.outcome === "reached") {
      updated.attempts_since_reached = 0;
      updated.last_reached_at = later(client.last_reached_at, touch.happened_at);
    } else {
      updated.attempts_since_reached = (client.attempts_since_reached || 0) + 1;
    }
    updated.open_callback = null;
    state.clients.set(client.id, updated);
  }
  state.touches.set(touch.id, { ...touch, created_at: now, local: true });
  if (touch.callback_at) setPromise(touch.client_id, touch.callback_id, touch.callback_at);
  return before;
}

/** Undo `applyTouch` (the call was never sent). */
export function revertTouch(before) {
  const { touch } = before;
  state.touches.delete(touch.id);
  if (touch.callback_id) state.callbacks.delete(touch.callback_id);
  for (const cb of before.callbacks) state.callbacks.set(cb.id, cb);
  if (before.client) {
    // Only what the call changed: an edit made since (a talking point jotted in the sheet) stays.
    const { id, last_touch_at, last_reached_at, attempts_since_reached, open_callback } = before.client;
    const current = state.clients.get(id);
    state.clients.set(id, current ? { ...current, last_touch_at, last_reached_at, attempts_since_reached, open_callback } : before.client);
  }
  return persistClientState(touch.client_id, { deletedTouch: touch.id, deletedCallback: touch.callback_id });
}

/** Set (dueAt an ISO string) or cancel (dueAt null) the promise `callbackId` for a client. */
export function setPromise(clientId, callbackId, dueAt) {
  const now = new Date().toISOString();
  const old = state.callbacks.get(callbackId);
  const cb = old
    ? { ...old, due_at: dueAt || old.due_at, status: dueAt ? "open" : "cancelled", updated_at: now }
    : { id: callbackId, client_id: clientId, due_at: dueAt, status: "open", created_at: now, updated_at: now, notified_at: null };
  if (!dueAt && !old) return;
  state.callbacks.set(callbackId, cb);
  const client = state.clients.get(clientId);
  if (client) {
    state.clients.set(clientId, { ...client, open_callback: dueAt ? { id: callbackId, due_at: dueAt } : null });
  }
}

/** Write one client's records (client, its callbacks, its touches) back to IndexedDB. */
export async function persistClientState(clientId, { deletedTouch = null, deletedCallback = null } = {}) {
  const client = state.clients.get(clientId);
  const writes = [];
  if (client) writes.push(put("clients", client));
  writes.push(putMany("callbacks", [...state.callbacks.values()].filter((c) => c.client_id === clientId)));
  writes.push(putMany("touches", touchesFor(clientId)));
  if (deletedTouch) writes.push(del("touches", deletedTouch));
  if (deletedCallback && !state.callbacks.has(deletedCallback)) writes.push(del("callbacks", deletedCallback));
  await Promise.all(writes);
}

/** Put a client (new or edited locally) in memory and IndexedDB. */
export async function saveClient(client) {
  state.clients.set(client.id, client);
  await put("clients", client);
}

/** Store what the server sent: it is the truth for everything already synced. Answers how
 * many records were new or different. */
export async function mergeServer(name, items) {
  const map = state[name];
  const fresh = [];
  for (const item of items) {
    const value = name === "touches" ? { ...item, local: false } : item;
    if (JSON.stringify(map.get(item.id)) === JSON.stringify(value)) continue;
    map.set(item.id, value);
    fresh.push(value);
  }
  if (fresh.length) await putMany(name, fresh);
  return fresh.length;
}
