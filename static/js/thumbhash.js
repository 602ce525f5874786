// ThumbHash decoder (Evan Wallace's public algorithm, https://evanw.github.io/thumbhash/),
// mirroring photobox/media/placeholder.py: turns the ~25 bytes stored per photo into a
// blurry placeholder image shown while the thumbnail loads.
"use strict";
window.thumbHashToDataURL = (function () {
  function decode(hash) {
    const { PI, cos, round, max } = Math;
    const h24 = hash[0] | (hash[1] << 8) | (hash[2] << 16);
    const h16 = hash[3] | (hash[4] << 8);
    const lDC = (h24 & 63) / 63, pDC = ((h24 >> 6) & 63) / 31.5 - 1, qDC = ((h24 >> 12) & 63) / 31.5 - 1;
    const lScale = ((h24 >> 18) & 31) / 31, hasAlpha = h24 >> 23;
    const pScale = ((h16 >> 3) & 63) / 63, qScale = ((h16 >> 9) & 63) / 63, isLandscape = h16 >> 15;
    const lx = max(3, isLandscape ? (hasAlpha ? 5 : 7) : h16 & 7);
    const ly = max(3, isLandscape ? h16 & 7 : (hasAlpha ? 5 : 7));
    const aDC = hasAlpha ? (hash[5] & 15) / 15 : 1, aScale = (hash[5] >> 4) / 15;
    const start = hasAlpha ? 6 : 5;
    let i = 0;
    const channel = (nx, ny, scale) => {
      const ac = [];
      for (let cy = 0; cy < ny; cy++)
        for (let cx = cy ? 0 : 1; cx * ny < nx * (ny - cy); cx++, i++)
          ac.push((((hash[start + (i >> 1)] >> ((i & 1) << 2)) & 15) / 7.5 - 1) * scale);
      return ac;
    };
    const lAC = channel(lx, ly, lScale), pAC = channel(3, 3, pScale * 1.25), qAC = channel(3, 3, qScale * 1.25);
    const aAC = hasAlpha ? channel(5, 5, aScale) : null;
    const ratio = (isLandscape ? (hasAlpha ? 5 : 7) : h16 & 7) / (isLandscape ? h16 & 7 : (hasAlpha ? 5 : 7)) || 1;
    const w = round(ratio > 1 ? 32 : 32 * ratio), h = round(ratio > 1 ? 32 / ratio : 32);
    const rgba = new Uint8ClampedArray(w * h * 4), fx = [], fy = [];
    for (let y = 0, k = 0; y < h; y++) {
      for (let x = 0; x < w; x++, k += 4) {
        let l = lDC, p = pDC, q = qDC, a = aDC;
        for (let cx = 0, n = max(lx, hasAlpha ? 5 : 3); cx < n; cx++) fx[cx] = cos(PI / w * (x + 0.5) * cx);
        for (let cy = 0, n = max(ly, hasAlpha ? 5 : 3); cy < n; cy++) fy[cy] = cos(PI / h * (y + 0.5) * cy);
        for (let cy = 0, j = 0; cy < ly; cy++)
          for (let cx = cy ? 0 : 1, fy2 = fy[cy] * 2; cx * ly < lx * (ly - cy); cx++, j++) l += lAC[j] * fx[cx] * fy2;
        for (let cy = 0, j = 0; cy < 3; cy++)
          for (let cx = cy ? 0 : 1, fy2 = fy[cy] * 2; cx < 3 - cy; cx++, j++) { const f = fx[cx] * fy2; p += pAC[j] * f; q += qAC[j] * f; }
        if (aAC) for (let cy = 0, j = 0; cy < 5; cy++)
          for (let cx = cy ? 0 : 1, fy2 = fy[cy] * 2; cx < 5 - cy; cx++, j++) a += aAC[j] * fx[cx] * fy2;
        const b = l - 2 / 3 * p, r = (3 * l - b + q) / 2, g = r - q;
        rgba[k] = 255 * r; rgba[k + 1] = 255 * g; rgba[k + 2] = 255 * b; rgba[k + 3] = 255 * a;
      }
    }
    return { w, h, rgba };
  }
  const canvas = document.createElement("canvas");
  return function (base64) {
    try {
      const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
      const { w, h, rgba } = decode(bytes);
      canvas.width = w; canvas.height = h;
      const ctx = canvas.getContext("2d");
      ctx.putImageData(new ImageData(rgba, w, h), 0, 0);
      return canvas.toDataURL();
    } catch (e) { return null; }
  };
})();
