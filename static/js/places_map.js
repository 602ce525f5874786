/* The Places map: Leaflet (vendored) over the bundled Natural Earth world outline, with
   photo positions clustered on the server into grid cells for the visible box and zoom
   (/api/places/map), so the browser never loads the whole library. Online tiles are drawn
   only when the map_tile_url setting is set (data-tiles). No inline script: CSP. */
(function () {
  "use strict";

  function init() {
    var el = document.getElementById("photo-map");
    if (!el || typeof L === "undefined") return;
    var map = L.map(el, { worldCopyJump: true, minZoom: 0, maxZoom: 18, zoomSnap: 1 });
    map.setView([20, 0], 2);
    if (el.dataset.tiles) {
      L.tileLayer(el.dataset.tiles, { maxZoom: 19, attribution: "" }).addTo(map);
    }
    el.dataset.outline && fetch(el.dataset.outline, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (geo) {
        if (!geo) return;
        var outline = L.geoJSON(geo, {
          interactive: false,
          style: { className: "map-land", weight: 0.6, fillOpacity: el.dataset.tiles ? 0 : 1 }
        }).addTo(map);
        outline.bringToBack();
        el.dataset.outlineReady = String(geo.features.length);
      });

    var markers = L.layerGroup().addTo(map);
    var pending = null;
    var timer = null;
    var first = true;

    function cellIcon(cell) {
      if (cell.count === 1) {
        return L.divIcon({
          className: "map-photo",
          html: '<img alt="" src="/api/assets/' + cell.id + '/thumbnail">',
          iconSize: [44, 44]
        });
      }
      var size = cell.count < 10 ? 32 : cell.count < 100 ? 38 : cell.count < 1000 ? 44 : 52;
      return L.divIcon({
        className: "map-cluster",
        html: "<span>" + (cell.count >= 10000 ? Math.round(cell.count / 1000) + "k" : cell.count) + "</span>",
        iconSize: [size, size]
      });
    }

    function draw(data) {
      markers.clearLayers();
      data.cells.forEach(function (cell) {
        var m = L.marker([cell.lat, cell.lon], {
          icon: cellIcon(cell), keyboard: true,
          title: cell.count === 1 ? "1 photo" : cell.count + " photos"
        });
        m.on("click", function () {
          if (cell.count === 1 || map.getZoom() >= map.getMaxZoom() - 2) {
            window.location.href = "/photos/" + cell.id;
          } else {
            map.setView([cell.lat, cell.lon], Math.min(map.getZoom() + 3, map.getMaxZoom()));
          }
        });
        markers.addLayer(m);
      });
      el.dataset.markers = String(data.cells.length);
    }

    function load() {
      // The first answer covers the whole world so the map can frame every photo;
      // later ones only the visible box.
      var q = "?south=-90&north=90&west=-180&east=180&zoom=2";
      if (!first) {
        var b = map.getBounds();
        var west = b.getWest(), east = b.getEast();
        if (east - west >= 360) { west = -180; east = 180; }
        q = "?south=" + b.getSouth().toFixed(4) + "&north=" + b.getNorth().toFixed(4) +
          "&west=" + west.toFixed(4) + "&east=" + east.toFixed(4) + "&zoom=" + map.getZoom();
      }
      if (pending) pending.abort();
      pending = new AbortController();
      fetch(el.dataset.points + q, { credentials: "same-origin", signal: pending.signal })
        .then(function (r) { if (!r.ok) throw new Error("map points: HTTP " + r.status); return r.json(); })
        .then(function (data) {
          if (first && data.cells.length) {
            first = false;
            var bounds = L.latLngBounds(data.cells.map(function (c) { return [c.lat, c.lon]; }));
            map.fitBounds(bounds.pad(0.2), { maxZoom: 10, animate: false });  // moveend loads the points again
            load();
            return;
          }
          first = false;
          draw(data);
        })
        .catch(function (err) { if (err.name !== "AbortError") el.dataset.error = String(err); });
    }

    map.on("moveend", function () {
      clearTimeout(timer);
      timer = setTimeout(load, 150);
    });
    load();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
