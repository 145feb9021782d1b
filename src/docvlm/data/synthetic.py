"""Rendered text lines: a seeded, offline stand-in for a line-level HTR dataset.

Each line is drawn in a font picked from the system (Debian's DejaVu family when present, Pillow's
built-in font otherwise), then degraded with jitter, slant, blur and noise so that a model has to
read the glyphs rather than memorise pixels. The output is a folder of PNGs with one JSONL
manifest per split, the same format users bring, so the demo exercises the real reading path.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/truetype", "/usr/share/fonts")
PREFERRED_FONTS = ("DejaVuSans.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf", "DejaVuSans-Bold.ttf",
                   "DejaVuSerif-Bold.ttf", "DejaVuSansCondensed.ttf")


@dataclass
class LineStyle:
    alphabet: str = "0123456789"
    min_length: int = 3
    max_length: int = 6
    height: int = 28
    """Image height in pixels; 28 is one row of Qwen-VL's 28-pixel merged patches."""
    width: int = 224
    """Fixed image width, so every line costs the same number of visual tokens (224: eight)."""
    font_size: tuple[int, int] = (18, 22)
    letter_spacing: tuple[int, int] = (0, 0)
    """Extra space between characters, in pixels (drawn from this range once per line)."""
    cell_width: int | None = None
    """Centre each character in a cell this many pixels wide, starting at the left margin, as in
    the comb fields of a form (boxes for the digits of a date or an amount). With 28 every merged
    Qwen-VL patch holds one character, so which visual token to read for the i-th character is
    fixed; ``None`` sets the text as one run with ``letter_spacing``."""
    margin: int = 3
    """Left margin before the text, in pixels."""
    jitter: int = 2
    """Largest random offset of the text, in pixels."""
    slant: float = 0.15
    """Largest horizontal shear (italic-like), as a fraction of the height."""
    blur: float = 0.6
    """Largest Gaussian blur radius."""
    noise: float = 0.04
    """Fraction of pixels flipped to random grey levels."""


def find_fonts(max_fonts: int = 6) -> list[str]:
    """TrueType fonts available here, preferred ones first; empty when none are installed."""
    found: list[str] = []
    for directory in FONT_DIRS:
        base = Path(directory)
        if not base.is_dir():
            continue
        for name in PREFERRED_FONTS:
            hits = sorted(base.rglob(name))
            found += [str(h) for h in hits if str(h) not in found]
        if len(found) < max_fonts:
            found += [str(p) for p in sorted(base.rglob("*.ttf")) if str(p) not in found]
        if found:
            break
    return found[:max_fonts]


def random_text(rng: random.Random, style: LineStyle) -> str:
    length = rng.randint(style.min_length, style.max_length)
    text = "".join(rng.choice(style.alphabet) for _ in range(length))
    # Spaces at the ends would be invisible targets; keep them inside the line.
    return text.strip() or rng.choice(style.alphabet.strip() or "0")


def render_line(text: str, rng: random.Random, style: LineStyle, fonts: list[str]) -> Image.Image:
    size = rng.randint(*style.font_size)
    font = ImageFont.truetype(rng.choice(fonts), size=size) if fonts else ImageFont.load_default(size=size)
    canvas = Image.new("L", (style.width * 2, style.height * 2), 255)
    draw = ImageDraw.Draw(canvas)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    # Left-aligned like a real line crop, which starts where the writing starts.
    x = max(style.margin - left + rng.randint(0, style.jitter), 1 - left)
    y = (style.height - (bottom - top)) // 2 - top + rng.randint(-style.jitter, style.jitter)
    ink = rng.randint(0, 60)
    spacing = rng.randint(*style.letter_spacing)
    for index, char in enumerate(text):  # one by one, so tracking or cells can place each character
        advance = draw.textlength(char, font=font)
        if style.cell_width:
            x = style.margin + index * style.cell_width + (style.cell_width - advance) / 2 \
                + rng.randint(-style.jitter, style.jitter)
        draw.text((x, y), char, font=font, fill=ink)
        x += advance + spacing
    shear = rng.uniform(-style.slant, style.slant)
    canvas = canvas.transform(canvas.size, Image.Transform.AFFINE, (1, shear, -shear * style.height / 2, 0, 1, 0),
                              fillcolor=255)
    image = canvas.crop((0, 0, style.width, style.height))
    if style.blur > 0:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0, style.blur)))
    pixels = image.load()
    for _ in range(int(style.noise * style.width * style.height)):
        pixels[rng.randrange(style.width), rng.randrange(style.height)] = rng.randint(0, 255)
    return image.convert("RGB")


def write_synthetic_lines(out_dir: str | Path, splits: dict[str, int] | None = None, style: LineStyle = LineStyle(),
                          seed: int = 0) -> Path:
    """Render ``splits`` (name -> count) into ``out_dir``/<split>.jsonl + images; returns ``out_dir``.

    Each split has its own seed derived from ``seed``, so adding training lines never changes
    the test lines.
    """
    splits = splits or {"train": 2000, "validation": 64, "test": 128}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fonts = find_fonts()
    for split_index, (split, count) in enumerate(splits.items()):
        rng = random.Random(seed * 1000 + split_index)
        image_dir = out_dir / "images" / split
        image_dir.mkdir(parents=True, exist_ok=True)
        with open(out_dir / f"{split}.jsonl", "w", encoding="utf-8") as manifest:
            for i in range(count):
                text = random_text(rng, style)
                name = f"{split}-{i:06d}"
                render_line(text, rng, style, fonts).save(image_dir / f"{name}.png")
                row = {"id": name, "image": f"images/{split}/{name}.png", "text": text}
                manifest.write(json.dumps(row, ensure_ascii=False) + "\n")
    # Written last: its presence says the folder is complete and how it was made.
    (out_dir / SETTINGS_FILE).write_text(json.dumps(synthetic_settings(splits, style, seed, fonts), indent=2) + "\n")
    return out_dir


SETTINGS_FILE = "synthetic.json"


def synthetic_settings(splits: dict[str, int], style: LineStyle, seed: int, fonts: list[str]) -> dict:
    return {"splits": splits, "style": asdict(style), "seed": seed, "fonts": [Path(f).name for f in fonts]}


def is_rendered(out_dir: str | Path, splits: dict[str, int], style: LineStyle, seed: int) -> bool:
    """Whether ``out_dir`` already holds exactly these lines (same splits, style, seed, fonts)."""
    settings = Path(out_dir) / SETTINGS_FILE
    if not settings.is_file():
        return False
    expected = json.loads(json.dumps(synthetic_settings(splits, style, seed, find_fonts())))  # tuples -> lists
    return json.loads(settings.read_text()) == expected
