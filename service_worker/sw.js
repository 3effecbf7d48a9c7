// Touchbase service worker. Served at /sw.js by webapp/pwa.py, which writes in the version (a
// content hash of the app shell) and the list of files to precache. A new deploy changes this
// file, so the browser installs the new worker; the page offers "Update available · Reload".
//
// A module worker (updates.js registers it with {type: "module"}; Chromium 91+, Safari 15+,
// Firefox 147+): the notification buttons import the app's own outbox, local data and rules, so
// an action taken here writes exactly the records the app writes. The imported files are shell
// files, so they are in the version hash and any change to them installs a new worker.
/* global self, caches, fetch */
import { readPush, notification, act, subscribe, postSubscription, deleteSubscription } from "/static/js/reminders.js";
import { kv } from "/static/js/store.js";

const VERSION = "__VERSION__";
const PRECACHE = "__PRECACHE__";
const PREFIX = "touchbase-shell-";
const CACHE = PREFIX + VERSION;

self.addEventListener("install", (event) => {
  // Bypass the HTTP cache: the files must be the ones this version was hashed from.
  event.waitUntil(
    caches.open(CACHE).then((cache) => cache.addAll(PRECACHE.map((url) => new Request(url, { cache: "reload" })))),
  );
  // No skipWaiting here: a new version waits until the rep taps "Reload".
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      const names = await caches.keys();
      await Promise.all(names.filter((n) => n.startsWith(PREFIX) && n !== CACHE).map((n) => caches.delete(n)));
      await self.clients.claim();
    })(),
  );
});

self.addEventListener("message", (event) => {
  if (event.data && event.data.type === "skip-waiting") self.skipWaiting();
});

self.addEventListener("fetch", (event) => {
  const { request } = event;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  // Never the API: the rep's data lives in IndexedDB, and the network answers for the server.
  if (url.pathname.startsWith("/api/") || url.pathname === "/sw.js") return;
  if (request.mode === "navigate") {
    // The app is one page: the shell answers for "/" (the calendar feed and others go out).
    if (url.pathname !== "/" && url.pathname !== "/index.html") return;
    event.respondWith(fromCache("/", request));
    return;
  }
  if (url.pathname.startsWith("/static/") || url.pathname === "/manifest.webmanifest") {
    event.respondWith(fromCache(request, request));
  }
});

async function fromCache(key, request) {
  const cache = await caches.open(CACHE);
  const hit = await cache.match(key, { ignoreSearch: true });
  return hit || fetch(request);
}

// ---- Push: the push step adds its "push" and "notificationclick" handlers below this line. ----

self.addEventListener("push", (event) => {
  event.waitUntil(showReminder(readPush(event.data)));
});

/** Show what a push carries; a push without data or with bad JSON still shows a reminder. */
function showReminder(payload) {
  const [title, options] = notification(payload);
  return self.registration.showNotification(title, options);
}

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  event.waitUntil(onClick(event.action, event.notification.data));
});

/** "Called" / "Tomorrow" go into the outbox (and out, when online); a plain tap opens the card. */
async function onClick(action, data) {
  const done = await act(action, data);
  if (done.kind === "open") return openApp(done.url);
  await tellWindows({ type: "touchbase:outbox" }); // an open app shows it and sends what waits
  return done;
}

async function appWindows() {
  const all = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  return all.filter((w) => new URL(w.url).origin === self.location.origin);
}

async function tellWindows(message) {
  for (const w of await appWindows()) w.postMessage(message);
}

/** Focus an open app window on `url` (its hash route), or open a new one there. */
async function openApp(url) {
  const target = new URL(url, self.location.origin).href;
  const [win] = await appWindows();
  if (!win) return { kind: "open", url: target, window: "new", opened: Boolean(await self.clients.openWindow(target)) };
  try {
    await win.focus(); // allowed during a notification click only
  } catch {
    // not from a click (the tests call this directly): the window is navigated all the same
  }
  win.postMessage({ type: "touchbase:open", url: target });
  return { kind: "open", url: target, window: "existing" };
}

self.addEventListener("pushsubscriptionchange", (event) => {
  event.waitUntil(resubscribe(event.oldSubscription, event.newSubscription));
});

/** The push service replaced or dropped the subscription: subscribe again and tell the server. */
async function resubscribe(oldSub, newSub) {
  if (!(await kv.get("me"))) return; // logged out here: no reminders wanted
  const sub = newSub || (await subscribe(self.registration.pushManager));
  await postSubscription(sub); // offline: the app re-posts it at its next start
  if (oldSub && oldSub.endpoint !== sub.endpoint) await deleteSubscription(oldSub.endpoint).catch(() => {});
}

// For the browser tests, over DevTools: a synthetic event cannot waitUntil, so they call these.
self.touchbase = { showReminder, onClick, resubscribe };
