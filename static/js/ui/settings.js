// Settings: daily goal, quiet hours, reconnect window, time zone, log out; the place where the
// push switch goes (static/js/push.js fills #push-settings); iOS "Add to Home Screen" help; your
// data (import, export, calendar feed: ui/import-export.js; all of it as JSON, log out
// everywhere, delete the account: here).
import { h, mount, field } from "./dom.js";
import { state, setMe, changed } from "../data.js";
import * as outbox from "../outbox.js";
import { toast } from "./toast.js";
import { logOut, deleteAccount } from "../session.js";
import { api, NetworkError } from "../api.js";
import { renderImportExport } from "./import-export.js";
import { DEFAULT_TIERS } from "../rules.js";
import { repPrompts, promptsToSave, MAX_PROMPTS } from "../habit.js";

function zones(current) {
  let list = [];
  try {
    list = Intl.supportedValuesOf("timeZone");
  } catch {
    list = [];
  }
  if (current && !list.includes(current)) list = [current, ...list];
  return list;
}

export function isIos() {
  const ua = navigator.userAgent;
  return /iPad|iPhone|iPod/.test(ua) || (ua.includes("Macintosh") && navigator.maxTouchPoints > 1);
}

export function isStandalone() {
  return window.matchMedia("(display-mode: standalone)").matches || navigator.standalone === true;
}

// ---- Habit settings (issue 6): the streak's weekends, tier rhythms, conversation prompts ----

/** Fields that go into the main settings form, after the daily goal. */
function habitFields(me) {
  const tiers = me.tiers || DEFAULT_TIERS;
  const tierField = (t, hint) =>
    field(`Tier ${t}`, { name: `tier_${t}`, type: "number", min: 1, max: 3650, required: true, inputmode: "numeric", value: tiers[t] }, hint);
  return [
    h(
      "label",
      { class: "check" },
      h("input", { type: "checkbox", name: "streak_weekends", id: "streak-weekends", checked: Boolean(me.streak_weekends) }),
      h("span", {}, "Weekends count toward my streak"),
    ),
    h(
      "fieldset",
      { class: "tier-days" },
      h("legend", { class: "label" }, "Check in every … days, by tier"),
      h("div", { class: "three-cols" }, tierField("A"), tierField("B"), tierField("C")),
      h("span", { class: "hint" }, "Clients tagged A, B or C are due for a call this often. A client's own rhythm wins."),
    ),
  ];
}

/** The PATCH /me changes from those fields. */
function habitChanges(form, d) {
  return {
    streak_weekends: form.querySelector("#streak-weekends").checked,
    tiers: { A: Number(d.tier_A), B: Number(d.tier_B), C: Number(d.tier_C) },
  };
}

function savePrompts(prompts) {
  const me = state.me || {};
  setMe({ ...me, prompts: prompts || null });
  outbox.add({ kind: "me_update", method: "PATCH", path: "/me", body: { prompts }, label: "Prompts" });
  outbox.flush();
  changed();
}

/** The prompts editor: one line each, add, remove, save, or back to the built-in five. */
function promptsSection(me) {
  const list = h("ul", { class: "prompt-editor", id: "prompt-editor" });
  const line = (text) => {
    const input = h("textarea", { rows: 2, value: text, maxLength: 200, "aria-label": "Prompt", placeholder: "Something to open a call with" });
    const li = h(
      "li",
      {},
      input,
      h("button", { type: "button", class: "btn small ghost remove", "aria-label": "Remove this prompt", title: "Remove", onclick: () => { li.remove(); counted(); } }, "✕"),
    );
    return li;
  };
  const add = h("button", { type: "button", class: "btn small", onclick: () => { list.append(line("")); counted(); list.lastChild.querySelector("textarea").focus(); } }, "Add a prompt");
  const counted = () => { add.disabled = list.children.length >= MAX_PROMPTS; };
  list.append(...repPrompts(me).map(line));
  counted();
  const values = () => [...list.querySelectorAll("textarea")].map((i) => i.value);
  return h(
    "section",
    { class: "settings-row", "aria-labelledby": "prompts-heading" },
    h("h2", { id: "prompts-heading" }, "Conversation prompts"),
    h("p", { class: "muted small" }, "Shown on a client's card when they have no talking points of their own."),
    list,
    h("div", { class: "row-actions" }, add),
    h(
      "div",
      { class: "row-actions" },
      h(
        "button",
        {
          type: "button",
          class: "btn primary",
          onclick: () => {
            const prompts = promptsToSave(values());
            savePrompts(prompts);
            toast(prompts ? "Prompts saved." : "No prompts left: the built-in ones are back.");
            if (!prompts) list.replaceChildren(...repPrompts(null).map(line));
          },
        },
        "Save prompts",
      ),
      h(
        "button",
        {
          type: "button",
          class: "btn ghost",
          onclick: () => {
            savePrompts(null);
            list.replaceChildren(...repPrompts(null).map(line));
            counted();
            toast("The built-in prompts are back.");
          },
        },
        "Use the built-in prompts",
      ),
    ),
  );
}

// ---- end of habit settings ----

// ---- Morning digest and weekly summary (issue 4): their own section inside "Reminders". ----
// Each change is saved at once, the way the form below saves: into the phone's copy and the
// outbox (PATCH /me), then sent; the line under the switches says whether it reached the
// server or is waiting on this phone.

const DEFAULT_DIGEST = "08:00";

async function saveSummary(changes, what, status) {
  await setMe({ ...(state.me || {}), ...changes });
  const entry = outbox.add({ kind: "me_update", method: "PATCH", path: "/me", body: changes, label: "Settings" });
  changed();
  status.textContent = `${what}: saved on this phone…`;
  await entry.saved;
  await outbox.flush();
  const failed = outbox.failedEntries().find((e) => e.seq === entry.seq);
  if (failed) status.textContent = `${what}: not saved — ${failed.error}`;
  else if (outbox.editable(entry.seq)) status.textContent = `${what}: saved on this phone; it reaches the server when you are back online.`;
  else status.textContent = `${what}: saved.`;
}

function summarySettings(me) {
  const status = h("p", { class: "muted", id: "summary-status", role: "status" });
  const digestOn = h("input", { type: "checkbox", role: "switch", id: "digest-switch", checked: Boolean(me.digest_time) });
  const digestTime = h("input", { type: "time", id: "digest-time", required: true, value: me.digest_time || DEFAULT_DIGEST });
  const timeField = h("div", { class: "field" }, h("label", { class: "label", htmlFor: "digest-time" }, "Digest time"), digestTime);
  timeField.hidden = !me.digest_time;
  const weekly = h("input", { type: "checkbox", role: "switch", id: "weekly-switch", checked: Boolean(me.weekly_push) });

  digestOn.addEventListener("change", () => {
    timeField.hidden = !digestOn.checked;
    const at = digestTime.value || DEFAULT_DIGEST;
    saveSummary({ digest_time: digestOn.checked ? at : null }, digestOn.checked ? `Morning digest at ${at}` : "Morning digest off", status);
  });
  digestTime.addEventListener("change", () => {
    if (!digestOn.checked || !/^\d\d:\d\d$/.test(digestTime.value)) return;
    saveSummary({ digest_time: digestTime.value }, `Morning digest at ${digestTime.value}`, status);
  });
  weekly.addEventListener("change", () => {
    saveSummary({ weekly_push: weekly.checked }, weekly.checked ? "Weekly summary on" : "Weekly summary off", status);
  });
  return h(
    "div",
    { id: "summary-settings" },
    h("label", { class: "check" }, digestOn, h("span", {}, "Morning digest")),
    h("p", { class: "hint" }, "One push a day at the time you choose — “6 calls today, 2 promised” — even in quiet hours."),
    timeField,
    h("label", { class: "check" }, weekly, h("span", {}, "Weekly summary on Mondays")),
    h("p", { class: "hint" }, "Last week’s calls, reach and promises kept, on Monday at the digest time (or your call time)."),
    status,
  );
}
// ---- end of the digest section ----

// ---- All of the rep's data (issue 7): one JSON file, log out everywhere, delete the account.
// Those two need the server: offline their buttons are disabled, "Needs a connection".

function online() {
  for (const el of document.querySelectorAll("[data-net]")) el.disabled = !navigator.onLine;
  const note = document.getElementById("net-hint");
  if (note) note.hidden = navigator.onLine;
}
addEventListener("online", online);
addEventListener("offline", online);
const failed = (err, what) => (err instanceof NetworkError ? `No connection: ${what}` : err.message);

function deleteForm() {
  const { waiting } = outbox.counts();
  const error = h("p", { class: "error", role: "alert" });
  const submit = h("button", { class: "btn danger wide", "data-net": "" }, "Delete my account");
  const form = h(
    "form",
    { class: "form" },
    h("p", {}, "Your clients, calls, callbacks, reminders, settings and calendar link are deleted from the server, for good."),
    waiting > 0 && h("p", { class: "notice" }, `${waiting} unsynced change(s) on this phone will be lost too.`),
    field("Your password", { name: "password", type: "password", required: true, autocomplete: "current-password" }),
    error,
    submit,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    submit.disabled = true;
    try {
      await deleteAccount(form.elements.password.value);
    } catch (err) {
      error.textContent = failed(err, "nothing was deleted.");
      online();
    }
  });
  return form;
}

function allYourData() {
  const status = h("p", { class: "error", role: "alert" });
  const box = h("details", { id: "delete-account" }, h("summary", {}, "Delete account…"));
  box.addEventListener("toggle", () => {
    if (box.open) box.append(deleteForm());
    else box.lastChild.remove();
    online();
  });
  const everywhere = async () => {
    if (!confirm("Log out on every phone and browser, this one too?")) return;
    try {
      await logOut(true);
    } catch (err) {
      status.textContent = failed(err, "nobody was logged out.");
    }
  };
  return h(
    "section",
    { class: "settings-block" },
    h("h2", {}, "All of it"),
    h("a", { class: "btn wide", href: "/api/v1/export/account.json", download: "touchbase-account.json" }, "Download all my data (JSON)"),
    h("div", { class: "row-actions" }, h("button", { type: "button", class: "btn wide", onclick: everywhere, "data-net": "" }, "Log out everywhere")),
    box,
    h("p", { class: "hint", id: "net-hint", role: "status" }, "Needs a connection."),
    status,
  );
}
// ---- end of all of the rep's data ----

export function renderSettings(view) {
  const me = state.me || {};
  const quiet = me.quiet_hours;
  const tz = me.timezone || Intl.DateTimeFormat().resolvedOptions().timeZone;
  const quietOn = h("input", { type: "checkbox", name: "quiet_on", checked: Boolean(quiet) });
  const quietTimes = h(
    "div",
    { class: "two-cols" },
    field("From", { name: "quiet_start", type: "time", value: quiet ? quiet.start : "21:00" }),
    field("Until", { name: "quiet_end", type: "time", value: quiet ? quiet.end : "08:00" }),
  );
  quietTimes.hidden = !quiet;
  quietOn.addEventListener("change", () => { quietTimes.hidden = !quietOn.checked; });
  const zoneSelect = h("select", { name: "timezone", id: "timezone" }, zones(tz).map((z) => h("option", { value: z, selected: z === tz }, z.replaceAll("_", " "))));
  const form = h(
    "form",
    { class: "form" },
    field("Daily goal (calls)", { name: "daily_goal", type: "number", min: 1, max: 500, required: true, inputmode: "numeric", value: me.daily_goal || 10 }),
    habitFields(me),
    h("label", { class: "check" }, quietOn, h("span", {}, "Quiet hours (no reminders)")),
    quietTimes,
    field("Reconnect after (days without contact)", { name: "reconnect_after_days", type: "number", min: 1, max: 3650, required: true, inputmode: "numeric", value: me.reconnect_after_days || 90 }),
    h("div", { class: "field" }, h("label", { class: "label", htmlFor: "timezone" }, "Time zone"), zoneSelect),
    h("div", { class: "form-actions" }, h("button", { type: "submit", class: "btn primary wide" }, "Save settings")),
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (!form.reportValidity()) return;
    const d = Object.fromEntries(new FormData(form));
    const changes = {
      daily_goal: Number(d.daily_goal),
      reconnect_after_days: Number(d.reconnect_after_days),
      timezone: d.timezone,
      quiet_hours: quietOn.checked ? { start: d.quiet_start, end: d.quiet_end } : null,
      ...habitChanges(form, d),
    };
    setMe({ ...(state.me || me), ...changes }); // the switches below may have changed it since
    outbox.add({ kind: "me_update", method: "PATCH", path: "/me", body: changes, label: "Settings" });
    outbox.flush();
    changed();
    toast("Settings saved.");
  });

  const ios = isIos() && !isStandalone();
  const data = h("div", { id: "data-settings" });
  renderImportExport(data, api);
  mount(
    view,
    form,
    promptsSection(me),
    h(
      "section",
      { class: "settings-row", "aria-labelledby": "push-title" },
      h("h2", { id: "push-title" }, "Reminders (push notifications)"),
      h("div", { id: "push-settings" }),
      summarySettings(me),
    ),
    ios &&
      h(
        "section",
        { class: "settings-row ios-help" },
        h("h2", {}, "Install on your iPhone"),
        h("p", {}, "Reminders on iPhone need the app on your Home Screen: tap the Share button in Safari, then “Add to Home Screen”, and open Touchbase from there."),
      ),
    h("section", { class: "settings-row", "aria-labelledby": "data-title" }, h("h2", { id: "data-title" }, "Your data"), data, allYourData()),
    h(
      "section",
      { class: "settings-row" },
      h("h2", {}, "Account"),
      h("p", { class: "muted" }, me.email ? `Logged in as ${me.email}` : ""),
      h("button", { type: "button", class: "btn danger wide", onclick: () => logOut() }, "Log out"),
    ),
  );
  online();
  document.dispatchEvent(new CustomEvent("touchbase:settings-rendered"));
  return null;
}
