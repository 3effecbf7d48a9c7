// Stats: today's figures come from the phone's own log (instant, offline too), the rest from the
// last GET /stats answer, shown "as of" its time when it cannot be refreshed. Each list acts in
// one tap (dial, or move a broken promise to tomorrow) through the app's usual paths.
import { h, mount } from "./dom.js";
import { state, prefs, setPromise, persistClientState, changed } from "../data.js";
import { formatDue, formatDay, quickPicks, localDay } from "../rules.js";
import { todayProgress, streakNow, streakText, persistenceText, percent, plural } from "../habit.js";
import { sync, refreshStats, statsState } from "../sync.js";
import * as outbox from "../outbox.js";
import { dialLink } from "./dial.js";
import { openSheet } from "./sheet.js";
import { toast } from "./toast.js";

const SVG = "http://www.w3.org/2000/svg";
const SHOWN = 5; // rows of a list shown before "Show N more"
let asking = false; // a refresh of the figures is under way

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  el.append(...children);
  return el;
}

/** A bar for a share (0..1 or null): SVG attributes, not a style attribute the CSP would refuse. */
function bar(share, cls = "") {
  const value = share === null || share === undefined ? 0 : Math.max(0, Math.min(1, share));
  // Green from 80%, else plain blue: the figure informs, it does not scold.
  const tone = share === null || share === undefined ? "none" : value >= 0.8 ? "good" : "on";
  return svg(
    "svg",
    { class: `bar ${tone} ${cls}`.trim(), viewBox: "0 0 100 10", preserveAspectRatio: "none", "aria-hidden": "true", focusable: "false" },
    svg("rect", { class: "bar-bg", x: 0, y: 0, width: 100, height: 10 }),
    svg("rect", { class: "bar-fill", x: 0, y: 0, width: (value * 100).toFixed(1), height: 10 }),
  );
}

function card(id, title, ...content) {
  return h("section", { class: "stat-card", id, "aria-labelledby": `${id}-title` }, h("h2", { id: `${id}-title` }, title), ...content);
}

function emptyNote(text, link = null) {
  return h("div", { class: "stat-empty" }, h("p", {}, text), link && h("a", { class: "btn small", href: link[1] }, link[0]));
}

/** The local copy of a client when the phone has it (fresher), else the stats' own reference. */
function who(ref) {
  return state.clients.get(ref.id) || ref;
}

function callButton(client) {
  if (client.phone) return dialLink(client, "Call", "btn call small");
  return h("button", { type: "button", class: "btn call alt small", "aria-label": `Log a call with ${client.name}`, onclick: () => openSheet(client.id) }, "Log");
}

function clientRow(ref, lines, actions = null) {
  const client = who(ref);
  return h(
    "li",
    { class: "stat-row", dataset: { clientId: client.id } },
    h(
      "a",
      { class: "stat-row-main", href: `#/clients/${client.id}` },
      h("span", { class: "name" }, client.name),
      lines.filter(Boolean).map(([cls, text]) => h("span", { class: cls }, text)),
    ),
    h("div", { class: "stat-row-actions" }, actions || (state.clients.has(client.id) ? callButton(client) : null)),
  );
}

/** A list that shows its first rows and folds the rest under "Show N more". */
function rows(label, items, render) {
  const head = items.slice(0, SHOWN).map(render);
  const rest = items.slice(SHOWN);
  return [
    h("ul", { class: "stat-list", "aria-label": label }, head),
    rest.length > 0 &&
      h("details", { class: "more", id: `more-${label.toLowerCase().replace(/\W+/g, "-")}` }, h("summary", {}, `Show ${rest.length} more`), h("ul", { class: "stat-list", "aria-label": `${label}, more` }, rest.map(render))),
  ];
}

function daysText(n) {
  return plural(n, "day");
}

function freshness(kept, now) {
  const { timezone } = prefs();
  const waiting = outbox.counts().waiting;
  const pending = waiting ? ` ${plural(waiting, "change")} on this phone ${waiting === 1 ? "is" : "are"} not counted yet.` : "";
  if (!kept) {
    const text = {
      offline: "Your stats need a connection the first time. Calls you log are kept on this phone meanwhile.",
      missing: "This server does not offer stats yet.",
      error: "Your stats could not be loaded just now.",
    }[asking ? "" : statsState.last] || "Getting your stats…";
    return h("p", { class: asking ? "loading" : "stale", id: "stats-freshness", role: "status" }, text);
  }
  const asOf = formatDue(kept.at, { now, timezone });
  if (asking) return h("p", { class: "muted asof", id: "stats-freshness", role: "status" }, `Updating… (figures as of ${asOf})`);
  if (statsState.last === "ok" && navigator.onLine) {
    return h("p", { class: "muted asof", id: "stats-freshness", role: "status" }, `Updated ${asOf}.${pending}`);
  }
  const why = statsState.last === "offline" || !navigator.onLine ? "You're offline" : "Could not update";
  return h("p", { class: "stale", id: "stats-freshness", role: "status" }, `${why}: these are your stats as of ${asOf}. They are not current.${pending}`);
}

function todayCard(data, now) {
  const me = state.me || {};
  const goal = me.daily_goal || 10;
  const { timezone } = prefs();
  const t = todayProgress({ touches: state.touches.values(), callbacks: state.callbacks.values(), now, timezone });
  const streak = streakNow(data, { now, timezone, calls: t.calls, goal, weekends: Boolean(me.streak_weekends) });
  const figure = (id, value, label) => h("div", { class: "figure", id }, h("strong", {}, value), h("span", {}, label));
  let streakLine;
  if (streak) streakLine = streakText(streak) || "Weekends don't count toward your streak.";
  else if (data && data.streak) streakLine = `${daysText(data.streak.days)} in a row as of ${formatDay(data.date)}.`;
  else streakLine = "Your streak shows once the app has been online today.";
  return card(
    "stats-today",
    "Today",
    h(
      "div",
      { class: "figures" },
      figure("today-calls", `${t.calls}/${goal}`, "calls"),
      figure("today-reached", String(t.reached), "reached"),
      figure("today-kept", String(t.promisesKept), t.promisesKept === 1 ? "promise kept" : "promises kept"),
    ),
    h("progress", { max: goal, value: Math.min(t.calls, goal), "aria-label": "Calls made today" }),
    h("p", { class: `streak${streak && streak.metToday ? " met" : ""}`, id: "stats-streak" }, streakLine),
    h(
      "p",
      { class: "muted small" },
      `Goal: ${plural(goal, "call")} a day${me.streak_weekends ? ", weekends included" : "; weekends neither count nor break the streak"}. `,
      h("a", { href: "#/settings" }, "Change"),
    ),
  );
}

function slippingRow(s) {
  const since = s.days_since_reached === null || s.days_since_reached === undefined ? "Never reached" : `Reached ${daysText(s.days_since_reached)} ago`;
  return clientRow(s.client, [["detail", s.days_over ? `${since} · ${daysText(s.days_over)} over` : since]]);
}

function coverageCard(data) {
  const tiers = data.coverage.tiers;
  const tagged = tiers.reduce((n, t) => n + t.clients, 0);
  const a = tiers.find((t) => t.tier === "A");
  const untiered = data.coverage.untiered || 0;
  if (!tagged) {
    return card(
      "stats-coverage",
      "Coverage",
      emptyNote(
        "Tag clients A, B or C to see coverage: A for your most valued (a call every month), B every quarter, C twice a year.",
        ["Tag a client", "#/clients"],
      ),
      untiered > 0 && h("p", { class: "muted small" }, `${plural(untiered, "client has", "clients have")} no tier yet.`),
    );
  }
  return card(
    "stats-coverage",
    "Coverage",
    a.clients
      ? h(
          "div",
          { class: "headline", id: "coverage-headline" },
          h("strong", { class: "big" }, percent(a.share)),
          h("span", {}, `of A clients reached within ${daysText(a.cadence_days)}`),
          h("span", { class: "muted" }, `${a.within} of ${a.clients}`),
        )
      : h("p", { class: "headline muted", id: "coverage-headline" }, "No A clients yet: tag your most valued clients A to track them monthly."),
    h(
      "ul",
      { class: "tiers" },
      tiers.map((t) =>
        h(
          "li",
          { class: "tier", id: `tier-${t.tier}` },
          h(
            "div",
            { class: "tier-line" },
            h("span", { class: "tier-name" }, `${t.tier} · every ${daysText(t.cadence_days)}`),
            h("strong", { class: "tier-share" }, t.clients ? percent(t.share) : "–"),
          ),
          bar(t.clients ? t.share : null),
          h("p", { class: "muted small tier-count" }, t.clients ? `${t.within} of ${t.clients} within their rhythm` : `No ${t.tier} clients yet.`),
          t.slipping.length > 0 &&
            h(
              "details",
              { class: "slipping", id: `slipping-${t.tier}` },
              h("summary", {}, `${t.clients - t.within} slipping — see who`),
              h("ul", { class: "stat-list", "aria-label": `${t.tier} clients slipping` }, t.slipping.map(slippingRow)),
            ),
        ),
      ),
    ),
    untiered > 0 && h("p", { class: "muted small" }, `${plural(untiered, "client has", "clients have")} no tier. `, h("a", { href: "#/clients" }, "Tag them")),
  );
}

/** Move a broken promise to tomorrow at the call time: the same snooze record as everywhere. */
function moveToTomorrow(item) {
  const client = who(item.client);
  const { timezone, callTime } = prefs();
  const now = new Date();
  const until = quickPicks({ now, timezone, callTime })[0].dueAt.toISOString();
  outbox.add({
    kind: "snooze",
    method: "POST",
    path: `/callbacks/${item.callback_id}/snooze`,
    body: { until },
    label: `Move callback · ${client.name}`,
  });
  setPromise(client.id, item.callback_id, until);
  persistClientState(client.id);
  outbox.flush();
  changed();
  toast(`${client.name}: callback moved to ${formatDue(until, { now, timezone })}.`);
}

function brokenRow(item, now) {
  const { timezone } = prefs();
  const local = state.callbacks.get(item.callback_id);
  const due = `Due ${formatDue(item.due_at, { now, timezone })}`;
  const late = item.days_late ? `${daysText(item.days_late)} late` : "late";
  if (item.status !== "open") return clientRow(item.client, [["detail", `${due} · called ${late}`]], []);
  // Made right on this phone since the answer: say so instead of offering it again.
  if (local && local.status === "done") return clientRow(item.client, [["detail", due], ["made-right", "Called — made right"]], []);
  if (local && local.status === "cancelled") return clientRow(item.client, [["detail", `${due} · cancelled`]], []);
  if (local && local.status === "open" && new Date(local.due_at) > now) {
    return clientRow(item.client, [["detail", due], ["made-right", `Moved to ${formatDue(local.due_at, { now, timezone })}`]]);
  }
  const client = who(item.client);
  return clientRow(item.client, [["detail overdue", `${due} · ${late}`]], [
    state.clients.has(client.id) && callButton(client),
    h("button", { type: "button", class: "btn small", "aria-label": `Call ${client.name} tomorrow instead`, onclick: () => moveToTomorrow(item) }, "Tomorrow"),
  ]);
}

function promisesCard(data, now) {
  const p = data.promises;
  if (!p.due) {
    return card(
      "stats-promises",
      "Promises kept",
      emptyNote(`No callbacks were due in the last ${daysText(p.window_days)}. When you pick "call again" after a call, whether you kept it shows here.`),
    );
  }
  return card(
    "stats-promises",
    "Promises kept",
    h(
      "div",
      { class: "headline", id: "promises-headline" },
      h("strong", { class: "big" }, percent(p.share)),
      h("span", {}, `of callbacks made by their day, last ${daysText(p.window_days)}`),
      h("span", { class: "muted" }, `${p.kept} of ${p.due}`),
    ),
    bar(p.share),
    p.broken.length
      ? [h("h3", { class: "list-title" }, `Broken (${p.broken.length}) — make it right`), rows("Broken promises", p.broken, (b) => brokenRow(b, now))]
      : h("p", { class: "good-news" }, "No broken promises. Every callback on its day."),
  );
}

function persistenceCard(data) {
  const list = data.persistence;
  return card(
    "stats-persistence",
    "Keep trying",
    list.length
      ? [
          h("p", { class: "muted small" }, "Clients you have tried 3 or more times since you last reached them. Not now is not no."),
          rows("Clients with many tries", list, (p) => {
            // The phone's count is fresher (a call logged since the answer moves it).
            const n = who(p.client).attempts_since_reached ?? p.attempts;
            return n > 0 ? clientRow(p.client, [["tries", persistenceText(n)]]) : clientRow(p.client, [["made-right", "Reached since — well done"]]);
          }),
        ]
      : emptyNote("Nobody has 3 or more unanswered tries. When someone does, they show here so you can decide for each."),
  );
}

function inactiveCard(data) {
  const list = data.inactive;
  return card(
    "stats-inactive",
    "Quiet the longest",
    list.length
      ? [
          h("p", { class: "muted small" }, "No client is past, only inactive. The longest silences first, with a way to open."),
          rows("Inactive clients", list, (i) =>
            clientRow(i.client, [
              ["detail", i.days_silent === null || i.days_silent === undefined ? "Never contacted" : `No contact for ${daysText(i.days_silent)}`],
              ["opener", i.opener],
            ]),
          ),
        ]
      : emptyNote("Add or import your clients to see who has gone quiet, with an opener for each.", ["Add a client", "#/clients/new"]),
  );
}

/** "16–22 Nov", or "30 Nov–6 Dec" across a month's end. */
function weekRange(w) {
  const [, sd, sm] = formatDay(w.start).split(" ");
  const [, ed, em] = formatDay(w.end).split(" ");
  return sm === em ? `${sd}–${ed} ${em}` : `${sd} ${sm}–${ed} ${em}`;
}

function weeklyCard(data) {
  const { this: now, last } = data.weeks;
  if (!now.calls && !last.calls && !now.promises_due && !last.promises_due) {
    return card("stats-weeks", "Week by week", emptyNote("Your weekly summary starts with your first call: calls, reach rate, promises kept and coverage."));
  }
  const top = Math.max(now.calls, last.calls, 1);
  const cell = (main, sub = null) => h("td", {}, h("strong", {}, main), sub && h("span", { class: "muted" }, sub));
  const kept = (w) => (w.promises_due ? cell(`${w.promises_kept}/${w.promises_due}`, percent(w.promises_share)) : cell("–", "none due"));
  const tiers = ["A", "B", "C"].filter((t) => now.coverage[t] !== null && now.coverage[t] !== undefined);
  return card(
    "stats-weeks",
    "Week by week",
    h(
      "table",
      { class: "weeks" },
      h("thead", {}, h("tr", {}, h("td"), h("th", { scope: "col" }, "This week", h("span", { class: "muted" }, weekRange(now))), h("th", { scope: "col" }, "Last week", h("span", { class: "muted" }, weekRange(last))))),
      h(
        "tbody",
        {},
        h("tr", { id: "week-calls" }, h("th", { scope: "row" }, "Calls"), [now, last].map((w) => h("td", {}, h("strong", {}, String(w.calls)), bar(w.calls / top, "calls")))),
        h("tr", { id: "week-reached" }, h("th", { scope: "row" }, "Reached"), [now, last].map((w) => cell(String(w.reached), w.calls ? percent(w.reach_rate) : null))),
        h("tr", { id: "week-kept" }, h("th", { scope: "row" }, "Promises kept"), [now, last].map(kept)),
      ),
    ),
    tiers.length > 0 && h("p", { class: "muted small", id: "week-coverage" }, `Coverage now: ${tiers.map((t) => `${t} ${percent(now.coverage[t])}`).join(" · ")}`),
  );
}

export function renderStats(view) {
  const draw = () => {
    const now = new Date();
    const kept = state.stats;
    const data = kept && kept.data;
    const { timezone } = prefs();
    // A day-old answer still shows, but its "today" figures are the phone's own.
    const stale = data && data.date !== localDay(now, timezone);
    // A redraw (a call logged, a promise moved) keeps the lists the rep has opened.
    const open = new Set([...view.querySelectorAll("details[open]")].map((d) => d.id));
    mount(
      view,
      freshness(kept, now),
      todayCard(stale ? null : data, now),
      data && [coverageCard(data), promisesCard(data, now), persistenceCard(data), inactiveCard(data), weeklyCard(data)],
      !data && !asking && statsState.last !== "missing" && h("button", { type: "button", class: "btn wide", onclick: refresh }, "Try again"),
    );
    for (const d of view.querySelectorAll("details")) d.open = open.has(d.id);
  };
  // Send what waits first, so the server counts it; then ask for the figures.
  const refresh = async () => {
    asking = true;
    draw();
    try {
      await sync();
      await refreshStats({ maxAge: 5000 });
    } finally {
      asking = false;
    }
    if (view.isConnected && document.body.dataset.screen === "stats") draw();
  };
  refresh();
  return draw;
}
