"""The reading budget: how much a file may make us allocate, checked *before* allocating.

Every file is untrusted. A file declares its own size (WFDB ``nsamp`` and signal count, an NPY
header's shape, an HDF5 dataset's shape, a DICOM waveform's sample and channel counts, an EDF
header's record counts) and a reader that trusts the declaration can be made to allocate gigabytes
from a few kilobytes (compressed or sparse storage). Each reader compares what the file declares
with a :class:`ReadLimits` and refuses with :class:`~ecgfounder.errors.ECGInputError` before the
allocation; decompression is streamed and stops at the byte cap.

The defaults fit one long clinical or ambulatory recording in memory (100 million values: 24 h of
3 leads at 360 Hz is 93 million) on a workstation; the HTTP service uses tighter ones (see
``ServeSettings.read_limits`` and ``docs/security.md``).
"""

from __future__ import annotations

import dataclasses
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from ..errors import ECGInputError

__all__ = ["ReadLimits", "DEFAULT_LIMITS", "check_declared", "check_bytes", "inflate_capped", "read_capped"]


@dataclass(frozen=True)
class ReadLimits:
    """Caps on what one file may declare or unpack. All sizes are checked before allocation.

    ``max_values``: samples x channels of the signal a file declares (the main budget).
    ``max_channels``: signals a file may declare (a header with 100,000 signal lines is refused
    before it is parsed). ``max_bytes``: bytes read whole or produced by decompression from one
    file (XML, text, a deflated DICOM data set, one NPZ member). ``max_header_bytes``: a WFDB
    header's size.
    """

    max_values: int = 100_000_000
    max_channels: int = 256
    max_bytes: int = 1 << 30
    max_header_bytes: int = 1 << 20

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"ReadLimits.{f.name} must be a positive integer (got {value!r})")

    @classmethod
    def from_env(cls) -> ReadLimits:
        """Defaults, overridden by ``ECGFOUNDER_MAX_VALUES``/``_MAX_CHANNELS``/``_MAX_BYTES``."""
        changes = {}
        for f in dataclasses.fields(cls):
            raw = os.environ.get(f"ECGFOUNDER_{f.name.upper()}")
            if raw:
                try:
                    changes[f.name] = int(float(raw))
                except ValueError:
                    raise ValueError(f"ECGFOUNDER_{f.name.upper()}={raw!r} is not a number") from None
        return cls(**changes)


DEFAULT_LIMITS = ReadLimits()


def _resolve(limits: ReadLimits | None) -> ReadLimits:
    return limits if limits is not None else ReadLimits.from_env()


def check_declared(
    source: object,
    *,
    channels: int,
    samples: int,
    limits: ReadLimits | None,
    what: str = "the file",
    values: int | None = None,
    values_text: str = "",
) -> None:
    """Refuse a declared (channels x samples) signal larger than the budget.

    ``values``: the number of values the file makes a reader produce where that is more than
    channels x samples (a WFDB signal with several samples per frame, ...), described by
    ``values_text`` in the refusal.
    """
    lim = _resolve(limits)
    if channels < 0 or samples < 0 or (values is not None and values < 0):
        raise ECGInputError(str(source), f"{what} declares a negative size ({channels} x {samples})")
    if channels > lim.max_channels:
        raise ECGInputError(
            str(source),
            f"{what} declares {channels:,} channels; the reading limit is "
            f"{lim.max_channels:,} (ReadLimits.max_channels)",
        )
    if values is not None and values > lim.max_values:
        raise ECGInputError(
            str(source),
            f"{what} declares {values_text or f'{values:,} values'} = {values:,} "
            f"values; the reading limit is {lim.max_values:,} (ReadLimits.max_values)",
        )
    if channels * samples > lim.max_values:
        raise ECGInputError(
            str(source),
            f"{what} declares {channels:,} x {samples:,} = {channels * samples:,} "
            f"values; the reading limit is {lim.max_values:,} (ReadLimits.max_values)",
        )


def check_bytes(
    source: object, n_bytes: int, limits: ReadLimits | None, what: str = "the file", field: str = "max_bytes"
) -> None:
    cap = getattr(_resolve(limits), field)
    if n_bytes > cap:
        raise ECGInputError(
            str(source), f"{what} holds {n_bytes:,} bytes; the reading limit is {cap:,} (ReadLimits.{field})"
        )


def _chunks(fh: BinaryIO, size: int = 1 << 20) -> Iterator[bytes]:
    while chunk := fh.read(size):
        yield chunk


def inflate_capped(
    source: object, fh: BinaryIO, *, wbits: int, limits: ReadLimits | None, what: str = "compressed data"
) -> bytes:
    """Decompress a zlib/deflate stream from ``fh``, refusing once the output passes ``max_bytes``."""
    cap = _resolve(limits).max_bytes
    d = zlib.decompressobj(wbits)
    out = bytearray()
    try:
        for chunk in _chunks(fh):
            while chunk:
                out += d.decompress(chunk, cap + 1 - len(out))
                if len(out) > cap:
                    raise ECGInputError(
                        str(source),
                        f"{what} unpacks to more than the reading limit of {cap:,} bytes "
                        "(ReadLimits.max_bytes)",
                    )
                chunk = d.unconsumed_tail
        out += d.flush()
    except zlib.error as exc:
        raise ECGInputError(str(source), f"{what} is not valid deflate data ({exc})") from None
    if len(out) > cap:
        raise ECGInputError(
            str(source),
            f"{what} unpacks to more than the reading limit of {cap:,} bytes (ReadLimits.max_bytes)",
        )
    return bytes(out)


def read_capped(
    source: object, fh: BinaryIO, n_bytes: int, limits: ReadLimits | None, what: str = "the file"
) -> bytes:
    """Read at most ``n_bytes`` (checked against ``max_bytes`` first) in bounded chunks."""
    check_bytes(source, n_bytes, limits, what)
    parts, left = [], n_bytes
    while left > 0:
        chunk = fh.read(min(left, 1 << 20))
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)
