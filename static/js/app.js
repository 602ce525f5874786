// photobox: small progressive enhancements; every page works without this file.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // Show stored unix times in the viewer's local time zone.
  for (const el of document.querySelectorAll("time[data-ts]")) {
    const d = new Date(Number(el.dataset.ts) * 1000);
    el.textContent = d.toLocaleString();
    el.dateTime = d.toISOString();
  }
});

// webdav: the service worker makes photobox installable (home screen, "share to photobox").
// Browsers allow it only on HTTPS or localhost; elsewhere the site works as before.
if ("serviceWorker" in navigator && window.isSecureContext) {
  window.addEventListener("load", () => {
    navigator.serviceWorker.register("/sw.js", {scope: "/"}).catch(() => {});
  });
}
