"""Label names shipped with the package."""

from __future__ import annotations

from functools import cache
from importlib import resources

__all__ = ["ecgfounder_labels"]


@cache
def ecgfounder_labels() -> tuple[str, ...]:
    """The 150 output labels of the released ECGFounder models, in output order.

    Spelling and case are upstream's (index 0 is ``ABNORMAL ECG``, index 7 ``otherwise normal ecg``).
    """
    text = resources.files(__package__).joinpath("ecgfounder_labels.txt").read_text("utf-8")
    labels = tuple(line.strip() for line in text.splitlines() if line.strip())
    if len(labels) != 150:  # pragma: no cover - guards a broken install
        raise RuntimeError(f"ecgfounder_labels.txt holds {len(labels)} labels, expected 150")
    return labels
