// photobox: small progressive enhancements; every page works without this file.
"use strict";
// Show stored unix times in the viewer's local time zone (on load and in HTMX-swapped parts).
function localTimes(root) {
  for (const el of root.querySelectorAll("time[data-ts]")) {
    const d = new Date(Number(el.dataset.ts) * 1000);
    el.textContent = d.toLocaleString();
    el.dateTime = d.toISOString();
  }
}
document.addEventListener("DOMContentLoaded", () => localTimes(document));
document.addEventListener("htmx:afterSwap", (e) => localTimes(e.target));

// A form with data-confirm asks before it is sent (deleting an album, revoking a link…).
document.addEventListener("submit", (e) => {
  const form = e.target;
  if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    e.preventDefault();
    e.stopImmediatePropagation();
  }
}, true);

// webdav: the service worker makes photobox installable (home screen, "share to photobox").
// Browsers allow it only on HTTPS or localhost; elsewhere the site works as before.
if ("serviceWorker" in navigator && window.isSecureContext) {
  window.addEventListener("load", () => {
    navigator.serviceWorker.register("/sw.js", {scope: "/"}).catch(() => {});
  });
}
