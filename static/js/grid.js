// Photo grids: placeholders, selection mode (click, shift-click ranges, whole days), the
// selection bar's actions, and the album picker. Without JS the grid still links to photos.
"use strict";
(() => {
  // Listeners sit on the document, so a grid that HTMX swaps in (search as you type) works too.
  const bar = document.getElementById("selection-bar");
  if (!bar) return;
  const gridEl = () => document.getElementById("grid") || document.createElement("div");
  const selected = new Set();
  let anchor = null;

  // Blurry placeholders from each tile's ThumbHash (CSSOM writes are allowed by the CSP).
  function paintPlaceholders(root) {
    if (!window.thumbHashToDataURL) return;
    for (const tile of root.querySelectorAll(".tile[data-th]:not([data-painted])")) {
      const url = window.thumbHashToDataURL(tile.dataset.th);
      if (url) tile.style.backgroundImage = `url(${url})`;
      tile.dataset.painted = "1";
    }
  }

  const tiles = () => Array.from(gridEl().querySelectorAll(".tile"));
  function render() {
    for (const t of tiles()) {
      const on = selected.has(t.dataset.id);
      t.classList.toggle("selected", on);
      t.setAttribute("aria-pressed", selecting() ? String(on) : "false");
    }
    document.body.classList.toggle("selecting", selected.size > 0);
    bar.hidden = selected.size === 0;
    document.getElementById("sel-count").textContent = `${selected.size} selected`;
    for (const old of bar.querySelectorAll("input[name=ids]")) old.remove();
    for (const id of selected) {
      const input = document.createElement("input");
      input.type = "hidden"; input.name = "ids"; input.value = id;
      bar.appendChild(input);
    }
  }
  const selecting = () => selected.size > 0;

  function toggle(tile, shift) {
    const id = tile.dataset.id;
    if (shift && anchor) {
      const all = tiles(), a = all.findIndex((t) => t.dataset.id === anchor), b = all.indexOf(tile);
      if (a >= 0 && b >= 0) {
        const [lo, hi] = a < b ? [a, b] : [b, a];
        for (const t of all.slice(lo, hi + 1)) selected.add(t.dataset.id);
        render();
        return;
      }
    }
    if (selected.has(id)) selected.delete(id); else selected.add(id);
    anchor = id;
    render();
  }

  document.addEventListener("click", (e) => {
    if (!e.target.closest("#grid")) return;
    const dayButton = e.target.closest(".select-day");
    if (dayButton) {
      const section = dayButton.closest(".day");
      const day = section.dataset.day;
      const dayTiles = gridEl().querySelectorAll(`.day[data-day="${CSS.escape(day)}"] .tile`);
      const all = Array.from(dayTiles).every((t) => selected.has(t.dataset.id));
      for (const t of dayTiles) all ? selected.delete(t.dataset.id) : selected.add(t.dataset.id);
      render();
      return;
    }
    const tile = e.target.closest(".tile");
    if (!tile) return;
    if (e.target.closest(".check") || selecting() || e.shiftKey) {
      e.preventDefault();
      toggle(tile, e.shiftKey);
    }
  });
  // Long press selects on touch screens, as in Google Photos.
  let pressTimer = null;
  document.addEventListener("touchstart", (e) => {
    const tile = e.target.closest("#grid .tile");
    if (!tile) return;
    pressTimer = setTimeout(() => { pressTimer = "fired"; toggle(tile, false); }, 450);
  }, { passive: true });
  document.addEventListener("touchend", (e) => {
    if (pressTimer === "fired") e.preventDefault();
    clearTimeout(pressTimer); pressTimer = null;
  });
  document.addEventListener("touchmove", () => { clearTimeout(pressTimer); pressTimer = null; }, { passive: true });
  document.addEventListener("keydown", (e) => {
    const tile = e.target.closest("#grid .tile");
    if (tile && (e.key === " " || e.key === "x")) { e.preventDefault(); toggle(tile, e.shiftKey); }
  });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && selected.size) { selected.clear(); render(); }
  });
  document.getElementById("sel-clear").addEventListener("click", () => { selected.clear(); render(); });

  bar.addEventListener("submit", (e) => {
    const button = e.submitter;
    if (button && button.dataset.confirm && !window.confirm(button.dataset.confirm)) e.preventDefault();
  });

  // Album picker.
  const dialog = document.getElementById("album-dialog");
  const albumButton = document.getElementById("sel-album");
  if (albumButton && dialog) {
    albumButton.addEventListener("click", () => {
      document.body.dispatchEvent(new Event("load-choices"));
      dialog.showModal();
    });
    dialog.addEventListener("close", () => {
      if (dialog.returnValue !== "ok") return;
      const chosen = dialog.querySelector("input[name=album_choice]:checked");
      const name = document.getElementById("new-album-name").value.trim();
      const add = (n, v) => { const i = document.createElement("input"); i.type = "hidden"; i.name = n; i.value = v; bar.appendChild(i); };
      const current = document.getElementById("sel-album-current");
      if (current) current.remove();
      if (name) { add("action", "album_new"); add("album_name", name); }
      else if (chosen) { add("action", "album_add"); add("album_id", chosen.value); }
      else return;
      bar.submit();
    });
  }

  paintPlaceholders(document);
  document.body.addEventListener("htmx:afterSwap", () => { paintPlaceholders(document); render(); });
})();
