"""Bad and awkward images for the robustness tests, made cheaply (no 900 MB allocations)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_bomb_png(path: Path, side: int = 30000) -> Path:
    """A valid 1-bit PNG of ``side`` x ``side`` white pixels (a few hundred KB on disk), written row
    block by row block so it never exists decoded in memory."""
    row = b"\x00" + b"\xff" * ((side + 7) // 8)
    compressor = zlib.compressobj(9)
    block = row * 1000
    data = b"".join(compressor.compress(block) for _ in range(side // 1000))
    data += compressor.compress(row * (side % 1000)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b""))
    return path


def write_text_line(path: Path, size=(112, 28), ink=0, paper=255, mode="L") -> Path:
    """A dark bar on a light background: something a model could read as ink."""
    pixels = np.full((size[1], size[0]), paper, dtype=np.uint8)
    pixels[size[1] // 3: 2 * size[1] // 3, 4: size[0] - 4] = ink
    Image.fromarray(pixels, "L").convert(mode).save(path)
    return path


def write_transparent_line(path: Path, size=(112, 28)) -> Path:
    """Black ink on a fully transparent background (RGB of the background is black too)."""
    rgba = np.zeros((size[1], size[0], 4), dtype=np.uint8)
    rgba[size[1] // 3: 2 * size[1] // 3, 4: size[0] - 4, 3] = 255
    Image.fromarray(rgba, "RGBA").save(path)
    return path


def write_16bit_grey(path: Path, size=(112, 28)) -> Path:
    """A 16-bit greyscale gradient from 0 to 65535 (PNG or TIFF by suffix)."""
    ramp = np.linspace(0, 65535, size[0]).round().astype(np.uint16)
    Image.fromarray(np.tile(ramp, (size[1], 1))).save(path)
    return path


def write_truncated_jpeg(path: Path, size=(112, 28)) -> Path:
    write_text_line(path.with_suffix(".full.jpg"), size)
    data = path.with_suffix(".full.jpg").read_bytes()
    path.with_suffix(".full.jpg").unlink()
    path.write_bytes(data[: len(data) // 2])
    return path
