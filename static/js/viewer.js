// The viewer: arrows and swipes to move, Escape to go back, click to zoom, hold for
// Live/Motion Photos, "i" for details, "f" to favourite.
"use strict";
(() => {
  const viewer = document.getElementById("viewer");
  if (!viewer) return;
  const { newer, older, back } = viewer.dataset;
  const go = (url) => { if (url) window.location.assign(url); };
  const details = document.getElementById("details");
  const infoButton = document.getElementById("info-button");
  const setInfo = (open) => {
    viewer.classList.toggle("info-open", open);
    infoButton.setAttribute("aria-expanded", String(open));
    try { localStorage.setItem("photobox.info", open ? "1" : "0"); } catch { /* private mode */ }
  };
  let stored = null;
  try { stored = localStorage.getItem("photobox.info"); } catch { /* ignore */ }
  setInfo(stored === null ? window.innerWidth > 1000 : stored === "1");
  infoButton.addEventListener("click", () => setInfo(!viewer.classList.contains("info-open")));

  document.addEventListener("keydown", (e) => {
    if (e.target.closest("input, select, textarea") || e.altKey || e.ctrlKey || e.metaKey) return;
    if (e.key === "ArrowLeft") go(newer);
    else if (e.key === "ArrowRight") go(older);
    else if (e.key === "Escape") go(back);
    else if (e.key === "i") setInfo(!viewer.classList.contains("info-open"));
    else if (e.key === "f") document.getElementById("fav-button")?.click();
    else if (e.key === "Delete") document.getElementById("trash-button")?.click();
  });

  // Swipe left/right on touch screens (ignored while zoomed, where a drag pans).
  const stage = document.getElementById("stage");
  let startX = null, startY = null;
  stage.addEventListener("touchstart", (e) => {
    if (e.touches.length !== 1 || stage.classList.contains("zoomed")) { startX = null; return; }
    startX = e.touches[0].clientX; startY = e.touches[0].clientY;
  }, { passive: true });
  stage.addEventListener("touchend", (e) => {
    if (startX === null) return;
    const dx = e.changedTouches[0].clientX - startX, dy = e.changedTouches[0].clientY - startY;
    if (Math.abs(dx) > 60 && Math.abs(dx) > 1.5 * Math.abs(dy)) go(dx > 0 ? newer : older);
    else if (dy > 120 && Math.abs(dy) > 2 * Math.abs(dx)) go(back);
    startX = null;
  });

  // Zoom: click toggles between fit-to-screen and full size (the original when browsers can show it).
  const media = document.getElementById("media");
  if (media && media.tagName === "IMG") {
    media.addEventListener("click", (e) => {
      const zoomed = stage.classList.toggle("zoomed");
      if (zoomed && media.dataset.original && !media.dataset.loaded) {
        media.dataset.loaded = "1";
        media.src = media.dataset.original;
      }
      if (zoomed) {
        const r = media.getBoundingClientRect();
        requestAnimationFrame(() => {
          stage.scrollLeft = (e.clientX - r.left) / r.width * stage.scrollWidth - stage.clientWidth / 2;
          stage.scrollTop = (e.clientY - r.top) / r.height * stage.scrollHeight - stage.clientHeight / 2;
        });
      }
    });
  }

  // Live / Motion Photos: play while hovered (mouse) or held (touch, keyboard).
  const motion = document.getElementById("motion");
  const motionButton = document.getElementById("motion-button");
  if (motion && motionButton) {
    const play = () => { stage.classList.add("playing"); motion.currentTime = 0; motion.play().catch(() => {}); };
    const stop = () => { stage.classList.remove("playing"); motion.pause(); };
    for (const el of [media, motionButton]) {
      el.addEventListener("mouseenter", play); el.addEventListener("mouseleave", stop);
    }
    motionButton.addEventListener("touchstart", play, { passive: true });
    motionButton.addEventListener("touchend", stop);
    motionButton.addEventListener("keydown", (e) => { if (e.key === " " || e.key === "Enter") { e.preventDefault(); play(); } });
    motionButton.addEventListener("keyup", stop);
    motion.addEventListener("ended", stop);
  }

  for (const form of document.querySelectorAll("form")) {
    form.addEventListener("submit", (e) => {
      const b = e.submitter;
      if (b && b.dataset.confirm && !window.confirm(b.dataset.confirm)) e.preventDefault();
    });
  }
  // Face boxes over the photo: the face of a person chip in the details while it is hovered,
  // focused or tapped, and all faces with "Show faces" on. Boxes are fractions of the upright
  // image (previews are upright, and browsers apply EXIF orientation to originals), placed
  // over the picture itself: object-fit: contain may letterbox it inside the <img> box.
  const boxes = document.getElementById("face-boxes");
  const placeBoxes = () => {
    if (!boxes || !media || media.tagName !== "IMG" || !media.naturalWidth) return;
    const s = stage.getBoundingClientRect(), r = media.getBoundingClientRect();
    const scale = Math.min(r.width / media.naturalWidth, r.height / media.naturalHeight);
    const w = media.naturalWidth * scale, h = media.naturalHeight * scale;
    const left = r.left - s.left + stage.scrollLeft + (r.width - w) / 2;
    const top = r.top - s.top + stage.scrollTop + (r.height - h) / 2;
    for (const el of boxes.querySelectorAll(".face-box")) {
      const [x1, y1, x2, y2] = el.dataset.box.split(",").map(Number);
      el.style.left = `${left + x1 * w}px`;
      el.style.top = `${top + y1 * h}px`;
      el.style.width = `${(x2 - x1) * w}px`;
      el.style.height = `${(y2 - y1) * h}px`;
    }
  };
  const toggle = document.getElementById("faces-toggle");
  const showAll = (on) => {
    boxes.classList.toggle("all", on);
    toggle.setAttribute("aria-pressed", String(on));
    try { localStorage.setItem("photobox.faces", on ? "1" : "0"); } catch { /* private mode */ }
    placeBoxes();
  };
  if (boxes) {
    media.addEventListener("load", placeBoxes);
    window.addEventListener("resize", placeBoxes);
    if (window.ResizeObserver) new ResizeObserver(placeBoxes).observe(stage);
    infoButton.addEventListener("click", () => requestAnimationFrame(placeBoxes));
    placeBoxes();
    if (toggle) {
      let on = false;
      try { on = localStorage.getItem("photobox.faces") === "1"; } catch { /* ignore */ }
      showAll(on);
      toggle.addEventListener("click", () => showAll(!boxes.classList.contains("all")));
    }
    let pinned = null;  // the chip tapped last (touch screens have no hover)
    for (const li of document.querySelectorAll(".face-list li[data-face]")) {
      const box = boxes.querySelector(`.face-box[data-face="${li.dataset.face}"]`);
      if (!box) continue;
      const hot = (on) => {
        if (on) placeBoxes();
        box.classList.toggle("hot", on || pinned === li);
        li.classList.toggle("hot", on || pinned === li);
      };
      li.addEventListener("mouseenter", () => hot(true));
      li.addEventListener("mouseleave", () => hot(false));
      li.addEventListener("focusin", () => hot(true));
      li.addEventListener("focusout", () => hot(false));
      li.addEventListener("click", (e) => {
        if (e.target.closest("a, button, input, form")) return;
        const was = pinned;
        pinned = pinned === li ? null : li;
        if (was && was !== li) was.dispatchEvent(new Event("mouseleave"));
        hot(pinned === li);
      });
    }
  }

  // Preload the neighbours' previews so the next swipe is instant.
  for (const url of [newer, older]) {
    if (!url) continue;
    const link = document.createElement("link");
    link.rel = "prefetch"; link.href = url;
    document.head.appendChild(link);
  }
})();
