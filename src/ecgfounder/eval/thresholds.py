"""Per-label decision thresholds from a file (written by hand, or by an evaluation)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from ..errors import ECGFounderError

__all__ = ["read_thresholds"]


def read_thresholds(path: str) -> dict[str, float]:
    """A JSON object label -> threshold, or a CSV with columns label,threshold."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ECGFounderError(f"{path}: cannot read thresholds ({exc.strerror or exc})") from None
    try:
        if path.lower().endswith(".json"):
            return {str(k): float(v) for k, v in json.loads(text).items()}
        rows = list(csv.DictReader(text.splitlines()))
        return {r["label"]: float(r["threshold"]) for r in rows}
    except (ValueError, KeyError, AttributeError) as exc:
        raise ECGFounderError(f"{path}: cannot read thresholds ({exc}); expected JSON "
                              "{label: threshold} or CSV label,threshold") from None
