// Reminders in settings: the "Reminders" switch (the permission prompt comes only from a tap on
// it), "Send a test notification", keeping this phone's subscription known to the server at
// start, dropping it on log out, and the messages the service worker sends after a tap on a
// notification. The worker-side logic is in reminders.js.
import { h, mount } from "./ui/dom.js";
import { isIos, isStandalone } from "./ui/settings.js";
import { onLogout } from "./session.js";
import { api } from "./api.js";
import { kv } from "./store.js";
import { loadLocal, changed } from "./data.js";
import * as outbox from "./outbox.js";
import { sync } from "./sync.js";
import { subscribe, postSubscription, deleteSubscription } from "./reminders.js";

const READY_WAIT = 10000; // ms to wait for the service worker before calling push unavailable
// Subscribing talks to the browser's push service, which may never answer (no network, or a
// Chromium without Google's services): give up with a message instead of spinning forever.
const SUBSCRIBE_WAIT = 20000;

const TEXT = {
  on: "On: this phone shows a reminder when a promised callback comes due.",
  off: "Off: this phone shows no reminders.",
  working: "One moment…",
  denied: "Blocked in browser settings — here is how to allow:",
  unsupported: "Not supported in this browser.",
  ios: "On iPhone, reminders need Touchbase on your Home Screen first: tap the Share button in Safari, then “Add to Home Screen”, and open Touchbase from there.",
};

function supported() {
  return (
    "serviceWorker" in navigator &&
    "PushManager" in window &&
    "Notification" in window &&
    "showNotification" in ServiceWorkerRegistration.prototype
  );
}

function howToAllow() {
  if (isIos()) return "Open the iPhone's Settings, then Notifications, then Touchbase, and turn on Allow Notifications.";
  if (/Android/.test(navigator.userAgent)) {
    return "In Chrome, tap ⋮, then Settings, Site settings, Notifications; find this site and choose Allow. Then come back here.";
  }
  return "Click the icon at the left of the address bar, set Notifications to Allow, then reload this page.";
}

/** The active service worker registration, or null when there is none (yet) after a wait. */
async function registration() {
  const reg = await navigator.serviceWorker.getRegistration();
  if (reg && reg.active) return reg;
  const late = new Promise((resolve) => setTimeout(() => resolve(null), READY_WAIT));
  return Promise.race([navigator.serviceWorker.ready, late]);
}

async function currentSubscription() {
  const reg = await navigator.serviceWorker.getRegistration();
  return reg ? reg.pushManager.getSubscription() : null;
}

async function currentState() {
  if (isIos() && !isStandalone()) return "ios";
  if (!supported()) return "unsupported";
  if (Notification.permission === "denied") return "denied";
  if (!(await registration())) return "unsupported"; // e.g. no module service workers here
  const sub = await currentSubscription();
  return Notification.permission === "granted" && sub ? "on" : "off";
}

function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function testButton() {
  const result = h("p", { class: "muted", id: "push-test-result", role: "status" });
  const button = h("button", { type: "button", class: "btn wide" }, "Send a test notification");
  button.addEventListener("click", async () => {
    button.disabled = true;
    result.textContent = "Sending…";
    try {
      const { devices } = await api("POST", "/push/test");
      result.textContent = devices
        ? `Sent to ${plural(devices, "device")}.`
        : "Sent to 0 devices: no phone has reminders on yet.";
    } catch (err) {
      result.textContent = `Could not send a test notification: ${err.message}`;
    } finally {
      button.disabled = false;
    }
  });
  return [button, result];
}

function draw(el, state, message = "") {
  el.dataset.state = state;
  const fixed = state === "ios" || state === "unsupported" || state === "denied";
  const toggle = h("input", {
    type: "checkbox",
    role: "switch",
    id: "push-switch",
    checked: state === "on",
    disabled: fixed || state === "working",
  });
  toggle.addEventListener("change", () => (toggle.checked ? turnOn(el) : turnOff(el)));
  mount(
    el,
    h("label", { class: "check" }, toggle, h("span", {}, "Reminders")),
    h("p", { id: "push-state", role: "status" }, TEXT[state]),
    state === "denied" && h("p", { class: "push-help" }, howToAllow()),
    message && h("p", { id: "push-message", class: state === "on" ? "muted" : "error" }, message),
    state !== "ios" && state !== "unsupported" && testButton(),
  );
}

async function render(el) {
  const state = await currentState();
  if (el.isConnected) draw(el, state);
}

function describe(err) {
  return (err && (err.message || err.name)) || String(err);
}

async function turnOn(el) {
  // Asked right inside the tap: browsers (Safari above all) prompt only for a user gesture.
  const asked = Notification.permission === "default" ? Notification.requestPermission() : Notification.permission;
  draw(el, "working");
  let permission;
  try {
    permission = await asked;
  } catch {
    permission = Notification.permission;
  }
  if (permission !== "granted") {
    if (permission === "denied") draw(el, "denied");
    else draw(el, "off", "Notifications were not allowed, so reminders stay off.");
    return;
  }
  const reg = await registration();
  if (!reg) {
    draw(el, "unsupported");
    return;
  }
  let sub;
  try {
    const late = new Promise((_, reject) => {
      setTimeout(() => reject(new Error("the push service did not answer; try again later")), SUBSCRIBE_WAIT);
    });
    sub = await Promise.race([subscribe(reg.pushManager), late]);
  } catch (err) {
    draw(el, "off", `This browser could not turn reminders on: ${describe(err)}`);
    return;
  }
  try {
    await postSubscription(sub);
  } catch (err) {
    await sub.unsubscribe().catch(() => {});
    draw(el, "off", `The server could not be told (${describe(err)}). Try again when you're online.`);
    return;
  }
  draw(el, "on", "Reminders are on for this phone.");
}

/** Unsubscribe this browser and tell the server; best effort. Once unsubscribed, the push service
 * answers 410 for the old endpoint, so the server forgets it on its own even if offline now. */
async function dropSubscription() {
  if (!("serviceWorker" in navigator)) return;
  const sub = await currentSubscription();
  if (!sub) return;
  const { endpoint } = sub;
  await sub.unsubscribe().catch(() => {});
  await deleteSubscription(endpoint).catch(() => {});
}

async function turnOff(el) {
  draw(el, "working");
  await dropSubscription();
  draw(el, await currentState(), "");
}

/** At start: tell the server again about this phone's subscription (it answers 200 if known). */
async function keepCurrent() {
  if (!supported() || Notification.permission !== "granted" || !(await kv.get("me"))) return;
  const sub = await currentSubscription();
  if (sub) await postSubscription(sub).catch(() => {}); // offline: the next start tries again
}

/** What the worker asks after a tap on a notification. */
async function fromWorker(event) {
  const msg = event.data || {};
  if (msg.type === "touchbase:open") {
    const url = new URL(msg.url, location.origin);
    if (url.origin === location.origin) location.hash = url.hash || "#/today";
  } else if (msg.type === "touchbase:outbox") {
    // "Called" or "Tomorrow" wrote to IndexedDB: show it, and send what is still waiting.
    await loadLocal();
    await outbox.adopt();
    changed();
    sync();
  }
}

document.addEventListener("touchbase:settings-rendered", () => {
  const el = document.getElementById("push-settings");
  if (el) render(el);
});
onLogout(dropSubscription);
if ("serviceWorker" in navigator) {
  navigator.serviceWorker.addEventListener("message", fromWorker);
  navigator.serviceWorker.ready.then(keepCurrent).catch(() => {});
}
