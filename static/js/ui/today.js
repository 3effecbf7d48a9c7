// Today: who to call and why, drawn from the local copy (no network wait), with progress.
import { h, mount } from "./dom.js";
import { state, todayList, prefs } from "../data.js";
import { reasonText } from "../rules.js";
import { persistenceText, todayProgress, streakNow, streakText, plural } from "../habit.js";
import * as outbox from "../outbox.js";
import { dialLink } from "./dial.js";
import { openSheet } from "./sheet.js";
import { syncState } from "../sync.js";

function failedBox() {
  const failed = outbox.failedEntries();
  if (!failed.length) return null;
  return h(
    "section",
    { class: "failed", "aria-label": "Changes the server refused" },
    h("h2", {}, "Not saved on the server"),
    failed.map((e) =>
      h(
        "div",
        { class: "failed-item" },
        h("p", {}, h("strong", {}, e.label || e.kind), ": ", e.error),
        h(
          "div",
          { class: "row-actions" },
          h("button", { type: "button", class: "btn small", onclick: () => { outbox.retry(e.seq); outbox.flush(); } }, "Retry"),
          h("button", { type: "button", class: "btn small ghost", onclick: () => outbox.remove(e.seq) }, "Discard"),
        ),
      ),
    ),
  );
}

function row(item, now) {
  const client = state.clients.get(item.clientId);
  if (!client) return null;
  const { timezone, tiers } = prefs();
  const tries = persistenceText(client.attempts_since_reached || 0);
  const talk = firstLine(client.talking_points);
  return h(
    "li",
    { class: "row", dataset: { clientId: client.id, reason: item.reason } },
    h(
      "a",
      { class: "row-main", href: `#/clients/${client.id}` },
      h("span", { class: "name" }, client.name),
      client.company && h("span", { class: "company" }, client.company),
      h("span", { class: `reason${item.overdue ? " overdue" : ""}` }, reasonText(item, client, { now, timezone, tiers })),
      tries && h("span", { class: "tries" }, tries),
      talk && h("span", { class: "talk" }, talk),
    ),
    client.phone
      ? dialLink(client, "Call", "btn call")
      : h("button", { type: "button", class: "btn call alt", "aria-label": `Log a call with ${client.name}`, onclick: () => openSheet(client.id) }, "Log"),
  );
}

/** The first talking point, for a glance before dialling (the card has them all). */
function firstLine(text) {
  return (text || "").split("\n").map((l) => l.trim()).find(Boolean) || "";
}

/** Calls, reached and promises kept today from the phone's own log; the streak when known. */
function progressBox(now) {
  const me = state.me || {};
  const goal = me.daily_goal || 10;
  const { timezone } = prefs();
  const today = todayProgress({ touches: state.touches.values(), callbacks: state.callbacks.values(), now, timezone });
  const streak = streakNow(state.stats && state.stats.data, {
    now,
    timezone,
    calls: today.calls,
    goal,
    weekends: Boolean(me.streak_weekends),
  });
  const streakLine = streakText(streak);
  return h(
    "div",
    { class: "progress" },
    h("p", { id: "progress-text" }, h("strong", {}, `${today.calls} of ${goal} calls`), " today"),
    h("progress", { max: goal, value: Math.min(today.calls, goal), "aria-label": "Calls made today" }),
    h(
      "p",
      { class: "progress-more", id: "progress-more" },
      h("span", {}, `${today.reached} reached`),
      h("span", {}, plural(today.promisesKept, "promise kept", "promises kept")),
    ),
    streakLine && h("p", { class: `streak${streak.metToday ? " met" : ""}`, id: "streak" }, streakLine),
  );
}

let marked = false;

export function renderToday(view) {
  const draw = () => {
    const now = new Date();
    const items = todayList(now);
    mount(
      view,
      progressBox(now),
      failedBox(),
      items.length
        ? h("ul", { class: "list today-list", "aria-label": "Calls for today" }, items.map((item) => row(item, now)))
        : !syncState.pulled && !state.clients.size
          ? h("p", { class: "loading", role: "status" }, navigator.onLine ? "Getting your clients…" : "Your clients will appear once you are online.")
          : h(
            "div",
            { class: "empty" },
            h("p", {}, state.clients.size ? "Nobody else is due today. Nice work." : "No clients yet."),
            h("a", { class: "btn", href: state.clients.size ? "#/clients" : "#/clients/new" }, state.clients.size ? "See all clients" : "Add a client"),
          ),
    );
    if (!marked && items.length) {
      marked = true;
      performance.mark("today-rendered"); // for bench/pwa_speed.py
    }
  };
  draw();
  return draw;
}
