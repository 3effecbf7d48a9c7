// Reminders on the phone, the part without a DOM: what a push shows, what its "Called" and
// "Tomorrow" buttons do, and subscribing. The service worker is a module worker (sw.js imports
// this file), so the buttons go through the app's own modules: the same outbox records
// (outbox.js), the same local data (data.js) and the same scheduling rules (rules.js, log.js).
// The page imports it too (push.js) for subscribing.
import { state, loadLocal, setPromise, persistClientState, prefs } from "./data.js";
import * as outbox from "./outbox.js";
import { logCall } from "./log.js";
import { quickPicks } from "./rules.js";
import { api } from "./api.js";
import { put } from "./store.js";

export const ACTIONS = [
  { action: "called", title: "Called" },
  { action: "tomorrow", title: "Tomorrow" },
];
const GENERIC_BODY = "You have a call to make. Open Touchbase to see who.";
const ID = /^[\w-]{1,64}$/;

/** A push message's data as an object; null when it has none or it is not a JSON object. */
export function readPush(data) {
  if (!data) return null;
  try {
    const value = data.json();
    return value && typeof value === "object" && !Array.isArray(value) ? value : null;
  } catch {
    return null;
  }
}

/** Only a path on this origin: a push must not send the rep somewhere else. */
export function safeUrl(url) {
  return typeof url === "string" && url.startsWith("/") && !url.startsWith("//") ? url : "/";
}

function id(value) {
  return typeof value === "string" && ID.test(value) ? value : null;
}

/** [title, options] for showNotification; a push without usable data gets a generic reminder. */
export function notification(payload) {
  const p = payload || {};
  const callbackId = id(p.callback_id);
  const clientId = id(p.client_id);
  const title = typeof p.title === "string" && p.title ? p.title : "Touchbase";
  const options = {
    body: typeof p.body === "string" ? p.body : GENERIC_BODY,
    tag: typeof p.tag === "string" && p.tag ? p.tag : callbackId ? `callback-${callbackId}` : "touchbase",
    renotify: true, // a re-sent reminder (same tag) alerts again instead of replacing silently
    icon: "/static/icons/icon-192.png",
    data: { url: safeUrl(p.url), callback_id: callbackId, client_id: clientId },
  };
  if (callbackId && clientId) options.actions = ACTIONS.map((a) => ({ ...a }));
  return [title, options];
}

async function fresh() {
  await Promise.all([loadLocal(), outbox.load()]);
  return Boolean(state.me);
}

/** Send what is due now; the app sends the rest on its next start or sync. */
async function send() {
  try {
    return await outbox.flush();
  } catch (err) {
    console.warn("outbox flush failed", err);
    return "error";
  }
}

/** "Called": log a reached call for the client, as the app's one tap does (same record, same
 * suggested next promise). Answers {seq, sent} or null when no rep is logged in here. */
export async function called(clientId, now = new Date()) {
  if (!id(clientId) || !(await fresh())) return null;
  const session = logCall(clientId, "reached", now);
  const entry = outbox.editable(session.seq);
  entry.notBefore = Date.now(); // no sheet and no Undo window to wait for
  await Promise.all([entry.saved, put("outbox", entry), persistClientState(clientId)]);
  return { seq: session.seq, touchId: session.body.id, sent: await send() };
}

/** "Tomorrow": move the promise to tomorrow at the rep's call time, in the rep's zone. */
export async function tomorrow(callbackId, clientId, now = new Date()) {
  if (!id(callbackId) || !(await fresh())) return null;
  const { timezone, callTime } = prefs();
  const until = quickPicks({ now, timezone, callTime })[0].dueAt.toISOString();
  const client = state.clients.get(clientId);
  const entry = outbox.add({
    kind: "snooze",
    method: "POST",
    path: `/callbacks/${callbackId}/snooze`,
    body: { until },
    label: `Move callback · ${client ? client.name : "client"}`,
  });
  const writes = [entry.saved];
  if (id(clientId)) {
    setPromise(clientId, callbackId, until);
    writes.push(persistClientState(clientId));
  }
  await Promise.all(writes);
  return { seq: entry.seq, until, sent: await send() };
}

/**
 * What a click on a reminder does: {kind: "called" | "tomorrow", result} after recording the
 * action, or {kind: "open", url} for a plain tap (and for a button whose data is missing).
 */
export async function act(action, data = {}) {
  const d = data || {};
  if (action === "called" && id(d.client_id)) return { kind: "called", result: await called(d.client_id) };
  if (action === "tomorrow" && id(d.callback_id)) {
    return { kind: "tomorrow", result: await tomorrow(d.callback_id, d.client_id) };
  }
  return { kind: "open", url: safeUrl(d.url) };
}

/** The server's base64url VAPID key as the bytes pushManager.subscribe wants. */
export function keyBytes(base64url) {
  const b64 = base64url.replace(/-/g, "+").replace(/_/g, "/");
  const raw = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

/** This browser's push subscription for our key, made if needed; throws what subscribe throws. */
export async function subscribe(pushManager) {
  const { public_key: key } = await api("GET", "/push/key");
  const options = { userVisibleOnly: true, applicationServerKey: keyBytes(key) };
  const existing = await pushManager.getSubscription();
  if (existing) {
    const current = existing.options && existing.options.applicationServerKey;
    const same = current && new Uint8Array(current).join() === options.applicationServerKey.join();
    if (same) return existing;
    await existing.unsubscribe(); // made with another server key: it can no longer be used
  }
  return pushManager.subscribe(options);
}

/** Tell the server about a subscription (201 new, 200 known). */
export function postSubscription(subscription) {
  return api("POST", "/push/subscriptions", subscription.toJSON());
}

export function deleteSubscription(endpoint) {
  return api("DELETE", "/push/subscriptions", { endpoint });
}
