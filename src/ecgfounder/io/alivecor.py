"""AliveCor / Kardia ECG files (``.atc``; AliveCor's "Alive File Format", versions 1-3, as its
own ATCpy and atc2json read them).

After the signature ``ALIVE\\0\\0\\0`` and a 4-byte version, blocks follow: a 4-byte id, a 4-byte
length, the data and a 4-byte checksum (the byte sum of id, length and data). ``fmt `` gives the
sample format (1: int16), the rate and the resolution in nV per unit, and the filter flags;
``ecg `` to ``ecg6`` hold leads I, II, III, aVR, aVL, aVF (single-lead KardiaMobile: lead I; the
6-lead device: all six); ``info`` the recording date, the recorder's software and hardware;
``ann`` the app's beat marks and ``avg`` its average beats (not read).

Untrusted like every input: each block must lie inside the file, the leads' samples go through
the reading budget before they are copied, and a checksum mismatch is noted. The phone's and the
recording's identifiers (``info``) are never read.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from ..errors import ECGInputError
from ._build import build_record
from .limits import ReadLimits, check_bytes, check_declared
from .record import ECGRecord

__all__ = ["read_alivecor", "write_alivecor", "MAGIC", "LEAD_BLOCKS"]

MAGIC = b"ALIVE\0\0\0"
#: data block id -> lead
LEAD_BLOCKS = {b"ecg ": "I", b"ecg2": "II", b"ecg3": "III", b"ecg4": "aVR", b"ecg5": "aVL", b"ecg6": "aVF"}
_FILTERS = {4: "mains filter", 16: "0.1 Hz baseline filter", 32: "mains notch filter", 64: "enhanced filter"}


def _checksum(block: bytes) -> int:
    return sum(block) & 0xFFFFFFFF


def _text(raw: bytes) -> str:
    return " ".join(raw.split(b"\0", 1)[0].decode("utf-8", "replace").split())


def read_alivecor(path: str | Path, limits: ReadLimits | None = None) -> ECGRecord:
    """An AliveCor ``.atc`` file; see the module."""
    path = Path(path)
    check_bytes(path, path.stat().st_size, limits, what="the AliveCor file")
    data = path.read_bytes()
    if data[:8] != MAGIC or len(data) < 12:
        raise ECGInputError(path, "AliveCor: no 'ALIVE' signature at the start of the file")
    (version,) = struct.unpack_from("<I", data, 8)
    blocks: dict[bytes, bytes] = {}
    bad: list[str] = []
    pos = 12
    while pos < len(data):
        if pos + 8 > len(data):
            raise ECGInputError(path, f"AliveCor: a block header is cut off at byte {pos}")
        block_id = data[pos : pos + 4]
        (length,) = struct.unpack_from("<I", data, pos + 4)
        end = pos + 8 + length
        if end + 4 > len(data):
            raise ECGInputError(
                path, f"AliveCor: block {block_id!r} declares {length:,} bytes, past the end of the file"
            )
        (stored,) = struct.unpack_from("<I", data, end)
        if stored != _checksum(data[pos:end]):
            bad.append(block_id.decode("latin-1").strip())
        blocks.setdefault(block_id, data[pos + 8 : end])
        pos = end + 4
    if b"fmt " not in blocks or len(blocks[b"fmt "]) < 5:
        raise ECGInputError(path, "AliveCor: no format block ('fmt ')")
    fmt, fs, resolution_nv, flags = struct.unpack_from("<BHHB", blocks[b"fmt "])
    if fmt != 1:
        raise ECGInputError(path, f"AliveCor: sample format {fmt} is not read (1, 16-bit samples, is)")
    if fs == 0 or resolution_nv == 0:
        raise ECGInputError(path, f"AliveCor: {fs} Hz and {resolution_nv} nV per unit declared")
    present = [(bid, lead) for bid, lead in LEAD_BLOCKS.items() if bid in blocks]
    if not present:
        raise ECGInputError(path, "AliveCor: no ECG data block ('ecg ' to 'ecg6')")
    n = min(len(blocks[bid]) // 2 for bid, _ in present)
    check_declared(path, channels=len(present), samples=n, limits=limits, what="the AliveCor file")
    notes = []
    if any(len(blocks[bid]) // 2 != n for bid, _ in present):
        notes.append(f"AliveCor: leads of different lengths cut to the shortest ({n} samples)")
    if bad:
        notes.append(f"AliveCor: checksum mismatch in block(s) {', '.join(bad)} (read anyway)")
    signal = np.stack([np.frombuffer(blocks[bid][: 2 * n], "<i2") for bid, _ in present]).astype(np.float64)
    meta: dict[str, object] = {
        "format": f"alivecor-atc-{version}",
        "mains_hz": 60 if flags & 2 else 50,
        "filters": [name for bit, name in _FILTERS.items() if flags & bit],
    }
    info = blocks.get(b"info", b"")
    if len(info) >= 32:
        meta["start_time"] = _text(info[:32]) or None
    if len(info) >= 32 + 40 + 44 + 32 * 3:
        at = 32 + 40 + 44  # after the date, the recording's and the phone's identifiers
        model, software, hardware = (_text(info[at + 32 * k : at + 32 * (k + 1)]) for k in range(3))
        meta["device"] = " / ".join(x for x in (hardware, software, model) if x)
    return build_record(
        signal * (resolution_nv / 1000.0),  # µV
        float(fs),
        [lead for _, lead in present],
        ["uV"] * len(present),
        source=str(path),
        record_id=path.stem,
        ecg_file=True,
        notes=notes,
        meta=meta,
    )


def write_alivecor(
    path: str | Path,
    units: np.ndarray,
    fs: int = 300,
    *,
    resolution_nv: int = 500,
    version: int = 3,
    recorded: str = "",
) -> Path:
    """Write an ``.atc`` file of int16 ``units`` (leads I[, II, III, aVR, aVL, aVF], samples);
    for tests and exports."""
    x = np.asarray(units)
    if x.ndim == 1:
        x = x[None]

    def block(block_id: bytes, payload: bytes) -> bytes:
        head = block_id + struct.pack("<I", len(payload)) + payload
        return head + struct.pack("<I", _checksum(head))

    info = recorded.encode()[:31].ljust(32, b"\0") + b"\0" * (40 + 44 + 32 * 3 + 52)
    out = MAGIC + struct.pack("<I", version) + block(b"info", info)
    out += block(b"fmt ", struct.pack("<BHHBH", 1, fs, resolution_nv, 0, 0))
    for bid, row in zip(LEAD_BLOCKS, x):
        out += block(bid, np.clip(np.round(row), -32768, 32767).astype("<i2").tobytes())
    path = Path(path)
    path.write_bytes(out)
    return path
