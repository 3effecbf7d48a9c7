// Settings: daily goal, quiet hours, reconnect window, time zone, log out; the place where the
// push switch goes (static/js/push.js fills #push-settings); iOS "Add to Home Screen" help; your
// data (import, export, calendar feed: ui/import-export.js).
import { h, mount, field } from "./dom.js";
import { state, setMe, changed } from "../data.js";
import * as outbox from "../outbox.js";
import { toast } from "./toast.js";
import { logOut } from "../session.js";
import { api } from "../api.js";
import { renderImportExport } from "./import-export.js";

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
    };
    setMe({ ...me, ...changes });
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
    h(
      "section",
      { class: "settings-row", "aria-labelledby": "push-title" },
      h("h2", { id: "push-title" }, "Reminders (push notifications)"),
      h("div", { id: "push-settings" }),
    ),
    ios &&
      h(
        "section",
        { class: "settings-row ios-help" },
        h("h2", {}, "Install on your iPhone"),
        h("p", {}, "Reminders on iPhone need the app on your Home Screen: tap the Share button in Safari, then “Add to Home Screen”, and open Touchbase from there."),
      ),
    h("section", { class: "settings-row", "aria-labelledby": "data-title" }, h("h2", { id: "data-title" }, "Your data"), data),
    h(
      "section",
      { class: "settings-row" },
      h("h2", {}, "Account"),
      h("p", { class: "muted" }, me.email ? `Logged in as ${me.email}` : ""),
      h("button", { type: "button", class: "btn danger wide", onclick: logOut }, "Log out"),
    ),
  );
  document.dispatchEvent(new CustomEvent("touchbase:settings-rendered"));
  return null;
}
