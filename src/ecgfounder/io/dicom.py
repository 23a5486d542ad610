"""DICOM waveform ECGs (12-lead, general and ambulatory ECG IODs) through ``pydicom``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ECGInputError, clip
from ._build import build_record
from .limits import ReadLimits, check_declared, inflate_capped
from .record import ECGRecord

__all__ = ["read_dicom"]


_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}


def _meta_end(fh: Any) -> int:
    """The offset just after the file meta group (0002,xxxx), which is always explicit VR little endian."""
    import struct

    fh.seek(132)
    while True:
        pos = fh.tell()
        head = fh.read(8)
        if len(head) < 8:
            return pos
        group, _, vr = struct.unpack("<HH2s", head[:6])
        if group != 0x0002:
            return pos
        if vr in _LONG_VRS:
            length = struct.unpack("<I", fh.read(4))[0]
        else:
            length = struct.unpack("<H", head[6:8])[0]
        fh.seek(length, 1)


def _dcmread(path: Path, limits: ReadLimits | None) -> Any:
    """``pydicom.dcmread``, except that a deflated data set is inflated here, streamed with a cap
    (pydicom inflates it whole: a few hundred KB can become gigabytes)."""
    import io
    import zlib

    import pydicom
    from pydicom.filereader import read_dataset, read_file_meta_info
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    meta = read_file_meta_info(str(path))
    if meta.get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian:
        return pydicom.dcmread(str(path))
    with open(path, "rb") as fh:
        fh.seek(_meta_end(fh))
        data = inflate_capped(
            path, fh, wbits=-zlib.MAX_WBITS, limits=limits, what="the deflated DICOM data set"
        )
    ds = read_dataset(io.BytesIO(data), is_implicit_VR=False, is_little_endian=True)
    ds.file_meta = meta
    return ds


def read_dicom(path: str | Path, limits: ReadLimits | None = None) -> ECGRecord:
    try:
        import pydicom  # noqa: F401
        from pydicom.waveforms.numpy_handler import multiplex_array
    except ImportError:  # pragma: no cover
        raise ECGInputError(path, "reading DICOM needs pydicom: pip install 'ecgfounder[formats]'") from None
    path = Path(path)
    try:
        ds = _dcmread(path, limits)
    except ECGInputError:
        raise
    except Exception as exc:  # noqa: BLE001 - InvalidDicomError, EOFError, ...
        raise ECGInputError(
            path, f"not a readable DICOM file ({type(exc).__name__}: {clip(str(exc), 120)})"
        ) from None
    groups = ds.get("WaveformSequence")
    if not groups:
        raise ECGInputError(path, "DICOM file has no Waveform Sequence (not a waveform ECG)")
    # Prefer the rhythm group with the most channels.
    best = max(
        range(len(groups)),
        key=lambda i: (
            str(groups[i].get("MultiplexGroupLabel", "")).upper() == "RHYTHM",
            int(groups[i].get("NumberOfWaveformChannels", 0)),
        ),
    )
    group = groups[best]
    try:
        check_declared(
            path,
            channels=int(group.get("NumberOfWaveformChannels", 0) or 0),
            samples=int(group.get("NumberOfWaveformSamples", 0) or 0),
            limits=limits,
            what="the DICOM waveform",
        )
    except (TypeError, ValueError):
        raise ECGInputError(path, "DICOM waveform channel or sample count is not a number") from None
    try:
        arr = multiplex_array(ds, best, as_raw=False).T
        fs = float(group.SamplingFrequency)
        names, units = [], []
        for i, ch in enumerate(group.ChannelDefinitionSequence):
            src = ch.get("ChannelSourceSequence")
            label = ch.get("ChannelLabel") or (src[0].get("CodeMeaning") if src else None) or f"ch{i + 1}"
            names.append(str(label))
            unit_seq = ch.get("ChannelSensitivityUnitsSequence")
            units.append(str(unit_seq[0].CodeValue) if unit_seq else None)
    except Exception as exc:  # noqa: BLE001 - missing elements, bad lengths
        raise ECGInputError(
            path, f"cannot decode the DICOM waveform ({type(exc).__name__}: {clip(str(exc), 150)})"
        ) from None
    age = None
    raw_age = str(ds.get("PatientAge", "") or "")
    if raw_age[:-1].isdigit() and raw_age.endswith("Y"):
        age = float(raw_age[:-1])
    sex = {"M": "M", "F": "F"}.get(str(ds.get("PatientSex", "")))
    return build_record(
        np.asarray(arr, dtype=np.float64),
        fs,
        names,
        units,
        source=str(path),
        ecg_file=True,
        record_id=str(ds.get("SOPInstanceUID", path.stem)),
        age=age,
        sex=sex,
        meta={"format": "dicom"},
    )
