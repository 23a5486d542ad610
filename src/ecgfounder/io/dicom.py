"""DICOM waveform ECGs (12-lead, general and ambulatory ECG IODs) through ``pydicom``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ECGInputError
from ._build import build_record
from .record import ECGRecord

__all__ = ["read_dicom"]


def read_dicom(path: str | Path) -> ECGRecord:
    try:
        import pydicom
        from pydicom.waveforms.numpy_handler import multiplex_array
    except ImportError:  # pragma: no cover
        raise ECGInputError(path, "reading DICOM needs pydicom: pip install 'ecgfounder[formats]'") from None
    path = Path(path)
    try:
        ds = pydicom.dcmread(str(path))
    except Exception as exc:  # noqa: BLE001 - InvalidDicomError, EOFError, ...
        raise ECGInputError(path, f"not a readable DICOM file ({type(exc).__name__}: {str(exc)[:120]})") from None
    groups = ds.get("WaveformSequence")
    if not groups:
        raise ECGInputError(path, "DICOM file has no Waveform Sequence (not a waveform ECG)")
    # Prefer the rhythm group with the most channels.
    best = max(range(len(groups)), key=lambda i: (
        str(groups[i].get("MultiplexGroupLabel", "")).upper() == "RHYTHM",
        int(groups[i].get("NumberOfWaveformChannels", 0))))
    group = groups[best]
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
        raise ECGInputError(path, f"cannot decode the DICOM waveform ({type(exc).__name__}: {str(exc)[:150]})") from None
    age = None
    raw_age = str(ds.get("PatientAge", "") or "")
    if raw_age[:-1].isdigit() and raw_age.endswith("Y"):
        age = float(raw_age[:-1])
    sex = {"M": "M", "F": "F"}.get(str(ds.get("PatientSex", "")))
    return build_record(np.asarray(arr, dtype=np.float64), fs, names, units, source=str(path),
                        record_id=str(ds.get("SOPInstanceUID", path.stem)), age=age, sex=sex,
                        meta={"format": "dicom"})
