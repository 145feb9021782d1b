"""Writing a file so that a kill never leaves half of it: through a temporary name and a rename.

Every file a later command reads (JSON, JSONL, ``config.yaml``, PAGE/ALTO copies, the report) is
written this way; the rename is atomic on one file system, so a reader finds the old file or the
new one whole. This module sits below every other (no docvlm imports), so ``config`` can use it.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write to; on leaving the block it is renamed to
    ``path``, or removed when the block raised (the exception goes on)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through :func:`atomic_path`."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return Path(path)
