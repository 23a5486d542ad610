"""EDF, EDF+ and BDF through ``pyedflib``. Channels of an ECG sampled at different rates are
brought to the highest ECG rate (polyphase resampling, noted)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ECGInputError
from ._build import build_record
from .leads import is_non_ecg_channel
from .limits import ReadLimits, check_declared
from .record import ECGRecord

__all__ = ["read_edf"]


def read_edf(path: str | Path, limits: ReadLimits | None = None) -> ECGRecord:
    try:
        import pyedflib
    except ImportError:  # pragma: no cover - depends on the install
        raise ECGInputError(path, "reading EDF/BDF needs pyedflib: pip install 'ecgfounder[formats]'") from None
    from ..signal.resample import resample

    path = Path(path)
    try:
        reader = pyedflib.EdfReader(str(path))
    except Exception as exc:  # noqa: BLE001 - pyedflib raises OSError with a code
        raise ECGInputError(path, f"not a readable EDF/BDF file ({str(exc)[:150] or type(exc).__name__})") from None
    try:
        n = reader.signals_in_file
        check_declared(path, channels=n, samples=0, limits=limits, what="the EDF header")
        labels = [str(s).strip() for s in reader.getSignalLabels()]
        rates = [float(reader.getSampleFrequency(i)) for i in range(n)]
        dims = [str(reader.getPhysicalDimension(i)).strip() for i in range(n)]
        ecg = [i for i in range(n) if not is_non_ecg_channel(labels[i], dims[i])]
        header = reader.getHeader()
        counts = reader.getNSamples()
        check_declared(path, channels=max(len(ecg), 1), samples=int(max((counts[i] for i in ecg), default=0)),
                       limits=limits, what="the EDF header")
        rows = {i: np.asarray(reader.readSignal(i), dtype=np.float64) for i in ecg}
    except ECGInputError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ECGInputError(path, f"cannot read EDF signals ({type(exc).__name__}: {str(exc)[:150]})") from None
    finally:
        reader.close()
    if not ecg:
        raise ECGInputError(path, f"no ECG channels in the file (found {', '.join(labels) or 'none'})")
    notes = []
    fs = max(rates[i] for i in ecg)
    if any(rates[i] != fs for i in ecg):
        slow = [f"{labels[i]} ({rates[i]:g} Hz)" for i in ecg if rates[i] != fs]
        notes.append(f"resampled to {fs:g} Hz: {', '.join(slow)}")
        rows = {i: (resample(r, rates[i], fs) if rates[i] != fs else r) for i, r in rows.items()}
    length = min(len(r) for r in rows.values())
    signal = np.stack([rows[i][:length] for i in ecg])
    dropped = [f"{labels[i]} ({dims[i]})" for i in range(n) if i not in ecg]
    if dropped:
        notes.append(f"dropped non-ECG channel(s): {', '.join(dropped)}")
    sex = {"male": "M", "female": "F", "m": "M", "f": "F"}.get(
        str(header.get("sex") or header.get("gender") or "").strip().lower())
    return build_record(signal, fs, [labels[i] for i in ecg], [dims[i] or None for i in ecg],
                        source=str(path), record_id=path.stem, notes=notes, sex=sex,
                        meta={"format": "edf", "startdate": str(header.get("startdate", ""))})
