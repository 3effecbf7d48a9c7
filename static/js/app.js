// Start-up and wiring: draw from the local copy at once, then sync; route between screens;
// replay the outbox on start, `online`, `visibilitychange` and a timer; offer worker updates.
import { $ } from "./ui/dom.js";
import { state, loadLocal, onChange, mergeServer, setMe } from "./data.js";
import * as outbox from "./outbox.js";
import { sync, loadSyncState } from "./sync.js";
import { initStatus, renderStatus } from "./ui/status.js";
import { renderToday } from "./ui/today.js";
import { renderCard } from "./ui/card.js";
import { renderClients, renderEdit } from "./ui/clients.js";
import { renderSettings } from "./ui/settings.js";
import { renderStats } from "./ui/stats.js";
import { renderLogin, renderSignup } from "./ui/auth.js";
import { openSheet, initSheet, isOpen } from "./ui/sheet.js";
import { takeDialled } from "./ui/dial.js";
import { initUpdates } from "./updates.js";
import "./push.js";

const SYNC_EVERY = 30 * 1000;
const ROUTES = [
  [/^#\/today$/, "today", "Today", renderToday],
  [/^#\/clients$/, "clients", "Clients", renderClients],
  [/^#\/clients\/new$/, "clients", "New client", (v) => renderEdit(v)],
  [/^#\/clients\/([\w-]+)$/, "clients", "Client", (v, m) => renderCard(v, { id: m[1] })],
  [/^#\/clients\/([\w-]+)\/edit$/, "clients", "Edit client", (v, m) => renderEdit(v, { id: m[1] })],
  [/^#\/stats$/, "stats", "Stats", renderStats],
  [/^#\/settings$/, "settings", "Settings", renderSettings],
  [/^#\/login$/, null, "Touchbase", (v) => renderLogin(v, { after: loggedIn, message: loginMessage })],
  [/^#\/signup$/, null, "Touchbase", (v) => renderSignup(v, { after: loggedIn })],
];

let update = null; // redraws the current screen after a data change, when it is a live one
let loginMessage = "";

function route() {
  const hash = location.hash || "#/today";
  let match = null;
  let entry = ROUTES.find(([re]) => (match = re.exec(hash)));
  if (!entry) {
    entry = ROUTES[0];
    match = [];
  }
  const [, tab, title, render] = entry;
  if (tab && !state.me) {
    location.replace("#/login");
    return;
  }
  document.body.dataset.screen = tab || "auth";
  $("#screen-title").textContent = title;
  for (const a of document.querySelectorAll(".tabbar a")) {
    if (a.dataset.tab === tab) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const view = $("#view");
  update = render(view, match) || null;
  window.scrollTo(0, 0);
}

function loggedIn() {
  loginMessage = "";
  location.hash = "#/today";
  sync();
}

function needLogin(reason) {
  const { waiting } = outbox.counts();
  loginMessage = reason || (waiting
    ? `Your session ended. Log in again to send the ${waiting} change(s) kept on this phone.`
    : "Your session ended. Please log in again.");
  if (!/^#\/(login|signup)$/.test(location.hash)) location.hash = "#/login";
}

async function backFromCall() {
  const clientId = await takeDialled();
  if (clientId && !isOpen() && state.clients.has(clientId)) openSheet(clientId);
}

async function start() {
  await Promise.all([loadLocal(), outbox.load(), loadSyncState()]);
  initStatus();
  initSheet();
  onChange(() => update && update());
  outbox.onChange(() => {
    renderStatus();
    if (/^(today|stats)$/.test(document.body.dataset.screen) && update) update();
  });
  outbox.hooks.unauthorized = needLogin;
  outbox.hooks.sent = async (entry, answer) => {
    if (!answer) return;
    if (entry.kind === "touch") await mergeServer("touches", [answer]);
    else if (entry.kind === "me_update") await setMe(answer);
    else if (entry.kind.startsWith("client") && !outbox.hasWaiting()) await mergeServer("clients", [answer]);
  };
  window.addEventListener("hashchange", route);
  route();
  document.body.classList.add("ready");

  window.addEventListener("online", () => sync());
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState !== "visible") return;
    if (update && document.body.dataset.screen === "today") update();
    backFromCall();
    sync();
  });
  setInterval(() => {
    sync();
    if (document.body.dataset.screen === "today" && update) update(); // the day may have turned
  }, SYNC_EVERY);
  if (state.me) {
    sync();
    backFromCall(); // the app may have been closed while the rep was on the phone
  }
  initUpdates();
}

start();
