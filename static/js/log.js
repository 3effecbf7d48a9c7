// Logging a call: one tap writes the touch (with the suggested promise) locally and to the
// outbox, where it waits while the rep may still change the pick, add a note or undo. After it
// has gone, a new pick becomes a snooze or a cancel of the promise the phone named.
import { suggestCallback, effectiveCadence } from "./rules.js";
import { state, prefs, applyTouch, revertTouch, setPromise, persistClientState, changed } from "./data.js";
import * as outbox from "./outbox.js";

export const HOLD_WHILE_OPEN = 2 * 60 * 1000; // the sheet is open: the rep may still change it
export const HOLD_AFTER = 5000; // after the sheet closes: the Undo window

export const OUTCOME_LABELS = { reached: "Reached", left_message: "Left message", no_answer: "No answer" };

/** The promise the rules suggest after `outcome` with this client. */
export function suggestion(client, outcome, now = new Date()) {
  const { timezone, callTime, tiers } = prefs();
  const cadenceDays = client ? effectiveCadence(client.cadence_days, client.tags || [], tiers) : null;
  return suggestCallback({ outcome, now, timezone, callTime, cadenceDays });
}

/**
 * Log a call now. The data and the screen change synchronously (the caller redraws before any
 * storage or network wait); the writes follow. Returns the session the sheet keeps.
 */
export function logCall(clientId, outcome, now = new Date()) {
  const client = state.clients.get(clientId);
  const due = suggestion(client, outcome, now);
  const body = { id: crypto.randomUUID(), client_id: clientId, outcome, happened_at: now.toISOString() };
  const callbackId = crypto.randomUUID();
  if (due) {
    body.callback_at = due.toISOString();
    body.callback_id = callbackId;
  }
  const before = applyTouch({ ...body, note: null });
  changed();
  const entry = outbox.add({
    kind: "touch",
    method: "POST",
    path: "/touches",
    body,
    label: `${OUTCOME_LABELS[outcome]} · ${client ? client.name : "client"}`,
    holdMs: HOLD_WHILE_OPEN,
  });
  persistClientState(clientId);
  return { clientId, outcome, callbackId, seq: entry.seq, body, before, dueAt: due };
}

/** Change the promise: a Date, or null for none. Answers {ok, message}. */
export function changePick(session, dueAt) {
  const iso = dueAt ? dueAt.toISOString() : null;
  const inPlace = outbox.edit(session.seq, (e) => {
    if (iso) {
      e.body.callback_at = iso;
      e.body.callback_id = session.callbackId;
    } else {
      delete e.body.callback_at;
      delete e.body.callback_id;
    }
    e.notBefore = Date.now() + HOLD_WHILE_OPEN;
  });
  if (!inPlace) {
    // Already sent. If the call carried no promise, this pick makes one (under the id the
    // phone chose); otherwise it moves or cancels the one the call made.
    const path = `/callbacks/${session.callbackId}`;
    if (!session.body.callback_id) {
      if (!iso) return { ok: true };
      const body = { id: session.callbackId, client_id: session.clientId, due_at: iso };
      outbox.add({ kind: "promise", method: "POST", path: "/callbacks", body, label: "New callback" });
      session.body.callback_id = session.callbackId;
    } else {
      outbox.add(
        iso
          ? { kind: "snooze", method: "POST", path: `${path}/snooze`, body: { until: iso }, label: "Move callback" }
          : { kind: "cancel", method: "DELETE", path, body: null, label: "Cancel callback" },
      );
    }
    outbox.flush();
  }
  setPromise(session.clientId, session.callbackId, iso);
  session.dueAt = dueAt;
  changed();
  persistClientState(session.clientId);
  return { ok: true };
}

/** Attach a note while the call has not gone yet. */
export function setNote(session, text) {
  const note = text.trim() || null;
  const ok = outbox.edit(session.seq, (e) => {
    if (note) e.body.note = note;
    else delete e.body.note;
    e.notBefore = Date.now() + HOLD_WHILE_OPEN;
  });
  if (ok) {
    const touch = state.touches.get(session.body.id);
    if (touch) state.touches.set(touch.id, { ...touch, note });
    persistClientState(session.clientId);
  }
  return ok;
}

/** Take the call back while it is still on the phone; false once it has been sent. */
export function undo(session) {
  if (!outbox.remove(session.seq)) return false;
  revertTouch(session.before);
  changed();
  return true;
}

/** The rep is done with the sheet: let the call go after the Undo window. */
export function release(session, ms = HOLD_AFTER) {
  outbox.hold(session.seq, ms);
}

export function canUndo(session) {
  return Boolean(outbox.editable(session.seq));
}
