// Touchbase service worker. Served at /sw.js by webapp/pwa.py, which writes in the version (a
// content hash of the app shell) and the list of files to precache. A new deploy changes this
// file, so the browser installs the new worker; the page offers "Update available · Reload".
/* global self, caches, fetch */

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
