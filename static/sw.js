// photobox service worker: what makes the web app installable, and a page when offline.
// Network first, always: nothing private is cached (no photos, pages or API answers), so a
// logout or a shared phone leaves nothing behind. Only the offline page and what it needs
// are kept, and only GET navigations are touched; uploads, shares (POST) and API calls go
// to the network as if there were no service worker.
"use strict";
const CACHE = "photobox-offline-v1";
const OFFLINE = "/static/offline.html";
const ASSETS = [OFFLINE, "/static/css/app.css", "/static/icon.svg"];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((c) => c.addAll(ASSETS)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const req = event.request;
  if (req.method !== "GET" || req.mode !== "navigate") return;
  event.respondWith(fetch(req).catch(() => caches.match(OFFLINE, {ignoreSearch: true})));
});
