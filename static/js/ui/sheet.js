// The outcome sheet: three big buttons log the call in one tap; quick picks then change the
// promise in one more; a note is optional; Undo while the call is still on the phone.
import { h, $, mount } from "./dom.js";
import { state, prefs, saveClient, changed } from "../data.js";
import * as outbox from "../outbox.js";
import { quickPicks, localDay, atLocal, formatDue } from "../rules.js";
import { logCall, changePick, setNote, undo, release, canUndo, OUTCOME_LABELS } from "../log.js";
import { toast } from "./toast.js";

let current = null; // {clientId, session}
let returnFocus = null;

function sheetEl() {
  return $("#sheet");
}

export function isOpen() {
  return current !== null;
}

export function openSheet(clientId) {
  const client = state.clients.get(clientId);
  if (!client) return;
  if (current) closeSheet();
  current = { clientId, session: null };
  const sheet = sheetEl();
  mount(
    sheet,
    h("h2", { id: "sheet-title" }, `How did it go with ${client.name}?`),
    h(
      "div",
      { class: "outcomes" },
      Object.entries(OUTCOME_LABELS).map(([outcome, label]) =>
        h("button", { type: "button", class: `btn outcome ${outcome}`, dataset: { outcome }, onclick: () => choose(outcome) }, label),
      ),
    ),
    h("button", { type: "button", class: "btn ghost wide", onclick: closeSheet }, "Not now"),
  );
  show();
  sheet.querySelector(".outcome").focus();
}

function show() {
  returnFocus = document.activeElement;
  $("#sheet-backdrop").hidden = false;
  sheetEl().hidden = false;
  document.body.classList.add("sheet-open");
}

function choose(outcome) {
  const session = logCall(current.clientId, outcome);
  current.session = session;
  drawPicks();
}

function pickLabel(session) {
  if (!session.dueAt) return "no callback";
  const { timezone } = prefs();
  return formatDue(session.dueAt, { now: new Date(), timezone });
}

function drawPicks() {
  const { session, clientId } = current;
  const client = state.clients.get(clientId);
  const { timezone, callTime } = prefs();
  const now = new Date();
  const picks = quickPicks({ now, timezone, callTime });
  const dueDay = session.dueAt ? localDay(session.dueAt, timezone) : null;
  let selected = session.dueAt ? "date" : "none";
  for (const p of picks) {
    if (dueDay && p.day === dueDay && selected === "date") selected = p.key;
  }
  const pickButton = (key, label, onclick) =>
    h("button", { type: "button", class: "chip", "aria-pressed": String(key === selected), dataset: { pick: key }, onclick }, label);
  const dateInput = h("input", {
    type: "date",
    id: "pick-date",
    min: localDay(now, timezone),
    value: selected === "date" && dueDay ? dueDay : "",
    onchange: (ev) => ev.target.value && pick("date", atLocal(ev.target.value, callTime, timezone)),
  });
  const note = h("textarea", {
    id: "call-note",
    rows: 2,
    placeholder: "What was said",
    oninput: (ev) => {
      if (!setNote(session, ev.target.value)) {
        ev.target.disabled = true;
        $("#note-hint").textContent = "Already synced: this note can no longer be added to the call.";
      }
    },
  });
  const talk = h("textarea", {
    id: "next-talk",
    rows: 2,
    maxLength: 10000,
    placeholder: "e.g. Ask how the warehouse move went",
    value: client.talking_points || "",
  });
  mount(
    sheetEl(),
    h("h2", { id: "sheet-title" }, `${OUTCOME_LABELS[session.outcome]} · ${client.name}`),
    h("p", { class: "logged", role: "status" }, "Logged. Call again: ", h("strong", { id: "pick-summary" }, pickLabel(session))),
    h(
      "div",
      { class: "picks", role: "group", "aria-label": "Call again" },
      picks.map((p) => pickButton(p.key, p.label, () => pick(p.key, p.dueAt))),
      h("label", { class: `chip date-chip${selected === "date" ? " on" : ""}` }, h("span", {}, "A date"), dateInput),
      pickButton("none", "None", () => pick("none", null)),
    ),
    h(
      "div",
      { class: "field" },
      h("label", { class: "label", htmlFor: "call-note" }, "Note (optional)"),
      note,
      h("span", { class: "hint", id: "note-hint", role: "status" }),
    ),
    h(
      "div",
      { class: "field" },
      h("label", { class: "label", htmlFor: "next-talk" }, "Talking points for next time"),
      talk,
      h("span", { class: "hint" }, "Shown on the card before your next call."),
    ),
    h(
      "div",
      { class: "sheet-actions" },
      h("button", { type: "button", class: "btn ghost", id: "undo-call", onclick: doUndo }, "Undo"),
      h("button", { type: "button", class: "btn primary", onclick: closeSheet }, "Done"),
    ),
  );
}

function pick(key, dueAt) {
  const { session } = current;
  const result = changePick(session, dueAt);
  if (!result.ok) {
    toast(result.message, { timeout: 6000 });
    return;
  }
  for (const b of sheetEl().querySelectorAll(".picks .chip[data-pick]")) {
    b.setAttribute("aria-pressed", String(b.dataset.pick === key));
  }
  sheetEl().querySelector(".date-chip").classList.toggle("on", key === "date");
  if (key !== "date") $("#pick-date").value = "";
  $("#pick-summary").textContent = pickLabel(session);
}

/**
 * The talking points jotted in the sheet go to the client like any other edit: the local copy
 * first, then a PATCH through the outbox (after the call itself, so offline too).
 */
function saveTalkingPoints() {
  const el = $("#next-talk");
  const client = current && state.clients.get(current.clientId);
  if (!el || !client) return;
  const text = el.value.trim() || null;
  if ((client.talking_points || null) === text) return;
  saveClient({ ...client, talking_points: text, updated_at: new Date().toISOString() });
  outbox.add({
    kind: "client_update",
    method: "PATCH",
    path: `/clients/${client.id}`,
    body: { talking_points: text },
    label: `Talking points · ${client.name}`,
  });
  outbox.flush();
  changed();
}

function doUndo() {
  const { session } = current;
  const undone = undo(session);
  saveTalkingPoints(); // a jotted talking point stays: it is about the client, not this call
  current = null;
  hide();
  if (undone) toast("Call removed.");
  else toast("That call is already saved on the server, so it can't be undone.", { timeout: 6000 });
}

function hide() {
  sheetEl().hidden = true;
  $("#sheet-backdrop").hidden = true;
  document.body.classList.remove("sheet-open");
  mount(sheetEl());
  if (returnFocus && returnFocus.isConnected) returnFocus.focus();
  returnFocus = null;
}

export function closeSheet() {
  if (!current) return;
  const { session } = current;
  saveTalkingPoints();
  current = null;
  hide();
  if (!session) return;
  release(session);
  toast(`Logged: ${OUTCOME_LABELS[session.outcome]} · ${pickLabel(session)}`, {
    id: "logged",
    action: canUndo(session) ? "Undo" : null,
    onAction: () => {
      if (undo(session)) toast("Call removed.");
      else toast("That call is already saved on the server, so it can't be undone.", { timeout: 6000 });
    },
  });
}

export function initSheet() {
  $("#sheet-backdrop").addEventListener("click", closeSheet);
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && current) closeSheet();
  });
}
