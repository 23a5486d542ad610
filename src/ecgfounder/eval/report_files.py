"""The table files every evaluation report writes: metrics.csv, metrics.json, metrics.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["write_tables"]


def write_tables(report: Any, out_dir: str | Path) -> dict[str, Path]:
    """``report.to_frame()`` as CSV, ``report.to_json()`` as JSON, ``report.to_markdown()`` as
    Markdown, in ``out_dir`` (created); returns the paths by kind."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "metrics.csv", "json": out / "metrics.json", "markdown": out / "metrics.md"}
    report.to_frame().to_csv(paths["csv"], index=False)
    paths["json"].write_text(json.dumps(report.to_json(), indent=2, default=float))
    paths["markdown"].write_text(report.to_markdown())
    return paths
