"""The service's error type and the scrubbing of server paths out of anything sent to a client."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["APIError", "scrub_paths", "scrub_value"]


class APIError(Exception):
    """An error answered as ``{"error": {"code", "message", ...}}`` with ``status`` (and ``headers``)."""

    def __init__(
        self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra
        self.headers = headers or {}


# An absolute POSIX path (not part of a word such as "multipart/form-data") or a Windows drive path.
_POSIX = re.compile(r"(?<![\w.~-])/(?:[^\s'\"()<>,;:/]+/)+([^\s'\"()<>,;:/]*)")
_WINDOWS = re.compile(r"\b[A-Za-z]:\\(?:[^\s'\"()<>,;:\\]+\\)+([^\s'\"()<>,;:\\]*)")


def scrub_paths(text: str) -> str:
    """``text`` with every absolute file path reduced to its last component.

    Readers name the file in their errors; in the service that name is a private temporary path
    (or the model's location), which must not reach the client.
    """
    return _WINDOWS.sub(r"\1", _POSIX.sub(r"\1", text))


def scrub_value(value: Any) -> Any:
    """:func:`scrub_paths` applied to every string inside dicts and lists (model metadata)."""
    if isinstance(value, str):
        return scrub_paths(value)
    if isinstance(value, dict):
        return {k: scrub_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub_value(v) for v in value]
    return value
