// Share links: the owner's list (copy a new link, confirm turning one off) and the public
// pages (blurry placeholders, arrow keys and swipes in the viewer, local times).
// Every page works without this file.
"use strict";
(() => {
  function paintPlaceholders(root) {
    if (!window.thumbHashToDataURL) return;
    for (const tile of root.querySelectorAll(".tile[data-th]:not([data-painted])")) {
      const url = window.thumbHashToDataURL(tile.dataset.th);
      if (url) tile.style.backgroundImage = `url(${url})`;
      tile.dataset.painted = "1";
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const el of document.querySelectorAll(".share-public time[data-ts]")) {
      const d = new Date(Number(el.dataset.ts) * 1000);
      el.textContent = d.toLocaleDateString();
      el.dateTime = d.toISOString();
    }
    paintPlaceholders(document);
    document.body.addEventListener("htmx:afterSwap", () => paintPlaceholders(document));

    // Owner: copy the new link.
    const copy = document.getElementById("copy-link");
    if (copy) {
      copy.addEventListener("click", async () => {
        const input = document.getElementById(copy.dataset.copy);
        input.select();
        try { await navigator.clipboard.writeText(input.value); } catch (_) { document.execCommand("copy"); }
        copy.textContent = "Copied";
      });
    }

    // Public viewer: arrow keys, Escape, and swipes move within the share.
    const viewer = document.querySelector(".share-public #viewer");
    if (!viewer) return;
    const go = (url) => { if (url) window.location.href = url; };
    document.addEventListener("keydown", (e) => {
      if (e.key === "ArrowLeft") go(viewer.dataset.newer);
      else if (e.key === "ArrowRight") go(viewer.dataset.older);
      else if (e.key === "Escape") go(viewer.dataset.back);
    });
    let startX = null;
    viewer.addEventListener("touchstart", (e) => { startX = e.touches[0].clientX; }, { passive: true });
    viewer.addEventListener("touchend", (e) => {
      if (startX === null) return;
      const dx = e.changedTouches[0].clientX - startX;
      startX = null;
      if (Math.abs(dx) > 60) go(dx > 0 ? viewer.dataset.newer : viewer.dataset.older);
    });
  });
})();
