"""How every benchmark reports: JSON on stdout and, with ``--json FILE``, in that file."""

from __future__ import annotations

import json
from pathlib import Path


def emit(figures: dict, path: Path | None) -> None:
    text = json.dumps(figures, indent=2)
    print(text)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
