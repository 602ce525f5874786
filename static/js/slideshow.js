// "On this day" slideshow: next/previous (buttons, arrow keys, swipe), auto-advance that
// pauses on the play button, space or a tap, and Escape to close. Without this script the
// arrows are plain links to ?i=N.
(function () {
  "use strict";
  var root = document.getElementById("slideshow");
  if (!root) return;
  var slides = Array.prototype.map.call(root.querySelectorAll(".slides li"), function (li) {
    return { src: li.dataset.src, date: li.dataset.date };
  });
  var img = document.getElementById("slide-image");
  var counter = document.getElementById("slide-counter");
  var date = document.getElementById("slide-date");
  var play = document.getElementById("slide-play");
  var index = parseInt(root.dataset.index, 10) || 0;
  var interval = parseInt(root.dataset.interval, 10) || 5000;
  var timer = null;
  var preload = new Image();

  function show(i) {
    index = (i + slides.length) % slides.length;
    img.src = slides[index].src;
    img.alt = "Photo " + (index + 1) + " of " + slides.length;
    counter.textContent = (index + 1) + " / " + slides.length;
    date.textContent = slides[index].date;
    root.dataset.index = String(index);
    preload.src = slides[(index + 1) % slides.length].src;
    history.replaceState(null, "", "?i=" + index);
  }
  function playing(on) {
    clearInterval(timer);
    timer = on && slides.length > 1 ? setInterval(function () { show(index + 1); }, interval) : null;
    play.setAttribute("aria-pressed", on ? "true" : "false");
    play.setAttribute("aria-label", on ? "Pause" : "Play");
    play.textContent = on ? "❚❚" : "▶";
  }
  function step(d) { show(index + d); if (timer) playing(true); }

  document.getElementById("slide-prev").addEventListener("click", function (e) { e.preventDefault(); step(-1); });
  document.getElementById("slide-next").addEventListener("click", function (e) { e.preventDefault(); step(1); });
  play.hidden = false;
  play.addEventListener("click", function () { playing(!timer); });
  document.addEventListener("keydown", function (e) {
    if (e.key === "ArrowRight") step(1);
    else if (e.key === "ArrowLeft") step(-1);
    else if (e.key === " ") { e.preventDefault(); playing(!timer); }
    else if (e.key === "Escape") document.getElementById("slide-close").click();
  });
  var startX = null;
  img.addEventListener("pointerdown", function (e) { startX = e.clientX; });
  img.addEventListener("pointerup", function (e) {
    if (startX === null) return;
    var dx = e.clientX - startX;
    startX = null;
    if (Math.abs(dx) > 40) step(dx < 0 ? 1 : -1);
    else playing(!timer);
  });
  preload.src = slides[(index + 1) % slides.length].src;
  playing(true);
})();
