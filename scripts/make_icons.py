"""Draw the PWA icons (static/icons/*.png) from the shapes of static/icon.svg.

Run once after changing the logo: ``python scripts/make_icons.py``. Pillow only (no SVG
renderer needed): the logo is a rounded blue square, white hills and a yellow sun on a
64-unit grid, drawn 4x larger and scaled down for smooth edges. The maskable icon fills
the whole square and keeps the picture inside the central 80% safe zone, as Android crops it.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

OUT = Path(__file__).resolve().parents[1] / "static" / "icons"
BLUE, WHITE, SUN = (47, 111, 222, 255), (255, 255, 255, 255), (255, 213, 74, 255)
HILLS = [(12, 46), (25, 30), (34, 41), (40, 34), (52, 46)]


def draw(size: int, *, maskable: bool) -> Image.Image:
    s = size * 4
    im = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    if maskable:
        d.rectangle((0, 0, s, s), fill=BLUE)
        scale, offset = s * 0.8 / 64, s * 0.1  # the logo inside the safe zone
    else:
        d.rounded_rectangle((0, 0, s - 1, s - 1), radius=s * 14 / 64, fill=BLUE)
        scale, offset = s / 64, 0.0
    pt = lambda x, y: (offset + x * scale, offset + y * scale)  # noqa: E731
    d.polygon([pt(x, y) for x, y in HILLS], fill=WHITE)
    cx, cy = pt(44, 21)
    r = 6 * scale
    d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=SUN)
    im = im.resize((size, size), Image.Resampling.LANCZOS)
    return im.convert("RGB") if maskable else im


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for size in (192, 512):
        draw(size, maskable=False).save(OUT / f"icon-{size}.png", optimize=True)
        draw(size, maskable=True).save(OUT / f"maskable-{size}.png", optimize=True)
    draw(180, maskable=True).save(OUT / "apple-touch-icon.png", optimize=True)  # iOS rounds it itself


if __name__ == "__main__":
    main()
