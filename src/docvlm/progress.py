"""Progress bars for long commands: shown on a terminal only, off with ``docvlm --quiet``.

``--quiet`` sets ``TQDM_DISABLE=1``, which tqdm itself honours for bars created without an explicit
``disable`` (the Trainer's); bars made here pass ``disable`` explicitly (``None`` = only on a
terminal), so they read the variable themselves.
"""

from __future__ import annotations

import os
from typing import Any, Iterable


def bar(iterable: Iterable | None = None, enabled: bool = True, **kwargs: Any):
    from tqdm.auto import tqdm

    quiet = not enabled or os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true", "yes")
    return tqdm(iterable, disable=True if quiet else None, **kwargs)
