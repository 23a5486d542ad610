"""Exception types. Every error a user can cause names the file (or model) and the reason."""

from __future__ import annotations

from os import PathLike

__all__ = [
    "ECGFounderError",
    "CheckpointError",
    "WeightsUnavailableError",
    "ContractError",
    "ECGInputError",
    "clip",
]


def clip(text: str, limit: int = 200) -> str:
    """``text`` shortened to about ``limit`` characters at a word boundary, with `` ...`` when cut
    (a third-party message quoted in an error never ends mid-word)."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit + 1)
    return (text[:cut] if cut > limit // 2 else text[:limit]).rstrip(" ,;:(") + " ..."


class ECGFounderError(Exception):
    """Base class of the errors this package raises on purpose."""


class CheckpointError(ECGFounderError):
    """A model file that cannot be loaded: unreadable, unsafe, or not matching the architecture."""

    def __init__(self, source: str | PathLike[str], reason: str) -> None:
        self.source = str(source)
        self.reason = reason
        super().__init__(f"{self.source}: {reason}")


class WeightsUnavailableError(CheckpointError):
    """Registered weights that are neither cached locally nor downloadable now."""


class ContractError(ECGFounderError, ValueError):
    """Input that does not match a model's input contract (leads, rate, length, units)."""


class ECGInputError(ECGFounderError, ValueError):
    """An ECG file that cannot be read, or a record that cannot be used (names the file and why)."""

    def __init__(self, source: str | PathLike[str] | None, reason: str) -> None:
        self.source = str(source) if source is not None else "<array>"
        self.reason = reason
        super().__init__(f"{self.source}: {reason}")
