"""Example eye crops for the page's upload box, drawn procedurally (no real data in the repository)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from vaegan.data import LABEL_NAMES


def draw_example_eye(open_eye: bool, variant: int = 0, size: int = 128) -> Image.Image:
    """A procedurally drawn grayscale eye crop (no real data): open with iris and pupil, or closed with lashes."""
    scale = 4  # draw large, then downsample for smooth edges
    s = size * scale
    skin = 150 + 12 * variant
    image = Image.new("L", (s, s), skin)
    draw = ImageDraw.Draw(image)
    cx, cy = s // 2, int(s * (0.54 + 0.03 * variant))
    half_width, lid = int(s * 0.36), int(s * (0.22 - 0.03 * variant))
    draw.arc((cx - half_width, cy - 2.4 * lid, cx + half_width, cy + 0.9 * lid), 200, 340, fill=skin - 45, width=s // 60)  # brow crease
    if open_eye:
        upper = [(cx + half_width * np.cos(a), cy - lid * np.sin(a)) for a in np.linspace(0, np.pi, 40)]
        lower = [(cx - half_width * np.cos(a), cy + 0.6 * lid * np.sin(a)) for a in np.linspace(0, np.pi, 40)]
        almond = upper + lower
        draw.polygon(almond, fill=205)
        iris = Image.new("L", (s, s), 0)
        iris_draw = ImageDraw.Draw(iris)
        radius, shift = int(lid * 1.05), int(s * 0.05 * (variant - 0.5))
        iris_draw.ellipse((cx + shift - radius, cy - radius, cx + shift + radius, cy + radius), fill=255)
        mask = Image.new("L", (s, s), 0)
        ImageDraw.Draw(mask).polygon(almond, fill=255)
        pupil = Image.new("L", (s, s), 85 - 20 * variant)
        ImageDraw.Draw(pupil).ellipse((cx + shift - radius // 2, cy - radius // 2, cx + shift + radius // 2, cy + radius // 2), fill=20)
        image.paste(pupil, (0, 0), Image.fromarray(np.minimum(np.asarray(iris), np.asarray(mask))))
        draw.ellipse((cx + shift + radius // 3, cy - radius // 2, cx + shift + radius // 3 + s // 40, cy - radius // 2 + s // 40), fill=245)
        draw.line(upper, fill=40, width=s // 45)
        draw.line(lower, fill=skin - 50, width=s // 90)
        for a in np.linspace(0.25, 2.9, 11):
            x0, y0 = cx + half_width * np.cos(a), cy - lid * np.sin(a)
            draw.line([(x0, y0), (x0 + s * 0.03 * np.cos(a), y0 - s * 0.06)], fill=35, width=s // 100)
    else:
        lid_line = [(cx - half_width * np.cos(a), cy + 0.35 * lid * np.sin(a)) for a in np.linspace(0, np.pi, 40)]
        draw.line(lid_line, fill=45, width=s // 40)
        for a in np.linspace(0.3, 2.85, 11):
            x0, y0 = cx - half_width * np.cos(a), cy + 0.35 * lid * np.sin(a)
            draw.line([(x0, y0), (x0 - s * 0.02 * np.cos(a), y0 + s * 0.07)], fill=40, width=s // 100)
    image = image.filter(ImageFilter.GaussianBlur(s / 160))
    return image.resize((size, size), Image.Resampling.LANCZOS)


def write_examples(directory: Path) -> list[str]:
    """Write four drawn example crops (two open, two closed) into directory; return their paths."""
    paths = []
    for open_eye in (True, False):
        for variant in (0, 1):
            path = directory / f"example-{LABEL_NAMES[int(open_eye)]}-{variant + 1}.png"
            draw_example_eye(open_eye, variant).save(path)
            paths.append(str(path))
    return paths
