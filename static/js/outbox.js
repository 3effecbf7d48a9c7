// The outbox: every change the rep makes is one record here, written before anything is sent.
// Like Workbox's QueueDb, each record carries its time and attempt count. A record leaves only
// after a 2xx. A refusal that a retry cannot fix (a 409, a 422...) marks it failed, kept and
// shown to the rep, instead of looping forever or vanishing.
import { all, put, del } from "./store.js";
import { api, ApiError, NetworkError } from "./api.js";

let entries = []; // in seq order; mirrors the outbox store
let lastSeq = 0;
let inFlight = null; // the seq being sent right now
let flushing = null;
let timer = null;
const listeners = new Set();

/** Called with (entry, answer) after each 2xx, so the data can take the server's version. */
export const hooks = { sent: async () => {}, unauthorized: () => {} };

export function onChange(fn) {
  listeners.add(fn);
}

function notify() {
  for (const fn of listeners) fn();
}

export async function load() {
  entries = (await all("outbox")).sort((a, b) => a.seq - b.seq);
  lastSeq = entries.length ? entries[entries.length - 1].seq : 0;
  notify();
}

/**
 * Take in records another context wrote (the service worker, for a notification's "Called" or
 * "Tomorrow"). Entries this page already holds are left as they are: unlike load(), this never
 * swaps an entry being sent or edited for a copy.
 */
export async function adopt() {
  const known = new Set(entries.map((e) => e.seq));
  const found = (await all("outbox")).filter((e) => !known.has(e.seq));
  if (!found.length) return 0;
  entries = [...entries, ...found].sort((a, b) => a.seq - b.seq);
  lastSeq = Math.max(lastSeq, entries[entries.length - 1].seq);
  notify();
  return found.length;
}

export function counts() {
  let waiting = 0;
  let failed = 0;
  for (const e of entries) {
    if (e.status === "failed") failed += 1;
    else waiting += 1;
  }
  return { waiting, failed };
}

export function failedEntries() {
  return entries.filter((e) => e.status === "failed");
}

/**
 * Add a change: {kind, method, path, body, label, holdMs}. Returns the entry at once (its seq
 * names it for later edits); the record is being written when this returns, and `entry.saved`
 * resolves once it is committed.
 */
export function add({ kind, method, path, body, label = "", holdMs = 0 }) {
  const now = Date.now();
  lastSeq = Math.max(now * 1000, lastSeq + 1);
  const entry = {
    seq: lastSeq,
    kind,
    method,
    path,
    body,
    label,
    createdAt: now,
    notBefore: now + holdMs,
    attempts: 0,
    status: "pending",
    error: null,
  };
  entries.push(entry);
  notify();
  const saved = put("outbox", entry);
  Object.defineProperty(entry, "saved", { value: saved, enumerable: false });
  return entry;
}

/** Is this entry still here and not on the wire, so that it can be changed in place? */
export function editable(seq) {
  const entry = entries.find((e) => e.seq === seq);
  return entry && entry.status === "pending" && inFlight !== seq ? entry : null;
}

/** Change a waiting entry in place; false when it was already sent (or is being sent). */
export function edit(seq, fn) {
  const entry = editable(seq);
  if (!entry) return false;
  fn(entry);
  put("outbox", entry);
  notify();
  return true;
}

/** Drop a waiting entry (undo); false when it was already sent. */
export function remove(seq) {
  const entry = editable(seq) || entries.find((e) => e.seq === seq && e.status === "failed");
  if (!entry) return false;
  entries = entries.filter((e) => e !== entry);
  del("outbox", seq);
  notify();
  return true;
}

/** Hold an entry back for `ms` from now (0 releases it). */
export function hold(seq, ms) {
  const ok = edit(seq, (e) => { e.notBefore = Date.now() + ms; });
  if (ok) flush(); // re-arms the timer for the new time
  return ok;
}

export function retry(seq) {
  const entry = entries.find((e) => e.seq === seq);
  if (!entry) return;
  entry.status = "pending";
  entry.error = null;
  put("outbox", entry);
  notify();
}

export function hasWaiting() {
  return entries.some((e) => e.status === "pending");
}

function schedule(at) {
  clearTimeout(timer);
  timer = setTimeout(() => flush(), Math.max(0, at - Date.now()) + 20);
}

/** Send what is due, oldest first; stops at the first entry that must wait or cannot go yet. */
export function flush() {
  if (!flushing) {
    flushing = run().finally(() => { flushing = null; });
  }
  return flushing;
}

async function run() {
  for (;;) {
    const entry = entries.find((e) => e.status === "pending");
    if (!entry) return "empty";
    if (entry.notBefore > Date.now()) {
      // Later changes wait too: a snooze must not overtake the call that opens its promise.
      schedule(entry.notBefore);
      return "held";
    }
    inFlight = entry.seq;
    const body = entry.body === null ? undefined : entry.body;
    try {
      const answer = await api(entry.method, entry.path, body);
      entries = entries.filter((e) => e !== entry);
      await del("outbox", entry.seq);
      await hooks.sent(entry, answer);
      notify();
    } catch (err) {
      entry.attempts += 1;
      if (err instanceof NetworkError) {
        await put("outbox", entry);
        return "offline";
      }
      if (!(err instanceof ApiError)) throw err;
      if (err.status === 401) {
        await put("outbox", entry);
        hooks.unauthorized();
        return "unauthorized";
      }
      if (err.status === 403 || err.status === 429 || err.status >= 500) {
        await put("outbox", entry); // worth another go later (the timer)
        return "retry";
      }
      entry.status = "failed";
      entry.error = err.message;
      await put("outbox", entry);
      notify();
    } finally {
      inFlight = null;
    }
  }
}
