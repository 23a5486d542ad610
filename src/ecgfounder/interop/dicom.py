"""DICOM waveform output: a record (and, optionally, our measurements and findings) as a DICOM
12-lead ECG Waveform Storage object (``1.2.840.10008.5.1.4.1.1.9.1.1``), or General ECG Waveform
Storage (``...9.1.2``) where the 12-lead IOD's limits do not hold (more than 15 channels, more
than 16,384 samples, a rate outside 200-1,000 Hz), written with ``pydicom``.

The signal is stored as signed 16-bit samples at one resolution for every channel (``resolution_uv``
microvolts per step; by default the finest of 1, 2, 5, 10... µV that holds the largest value), so
reading the file back (:func:`ecgfounder.read_ecg`, or any DICOM viewer) gives the record rounded
to that resolution, exactly. Channels carry their lead names (``ChannelLabel``) and the SCP-ECG
lead codes; measurements become ``WaveformAnnotationSequence`` items with their LOINC code and
UCUM unit, findings text annotations naming the model. The patient module holds only age and sex
(from the record); name and ID are empty (type 2), never copied from anything.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["write_dicom_ecg", "TWELVE_LEAD_ECG", "GENERAL_ECG"]

TWELVE_LEAD_ECG = "1.2.840.10008.5.1.4.1.1.9.1.1"
GENERAL_ECG = "1.2.840.10008.5.1.4.1.1.9.1.2"
#: SCP-ECG lead codes (DICOM CID 3001)
_SCPECG = {
    "I": ("5.6.3-9-1", "Lead I"),
    "II": ("5.6.3-9-2", "Lead II"),
    "V1": ("5.6.3-9-3", "Lead V1"),
    "V2": ("5.6.3-9-4", "Lead V2"),
    "V3": ("5.6.3-9-5", "Lead V3"),
    "V4": ("5.6.3-9-6", "Lead V4"),
    "V5": ("5.6.3-9-7", "Lead V5"),
    "V6": ("5.6.3-9-8", "Lead V6"),
    "III": ("5.6.3-9-61", "Lead III"),
    "aVR": ("5.6.3-9-62", "aVR, augmented voltage, right"),
    "aVL": ("5.6.3-9-63", "aVL, augmented voltage, left"),
    "aVF": ("5.6.3-9-64", "aVF, augmented voltage, foot"),
}
_STEPS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


def _code(value: str, scheme: str, meaning: str) -> Any:
    from pydicom.dataset import Dataset

    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning[:64]
    return item


def _resolution(signal_mv: np.ndarray, resolution_uv: float | None) -> float:
    if resolution_uv is not None:
        if not resolution_uv > 0:
            raise ValueError("resolution_uv must be positive")
        return float(resolution_uv)
    peak_uv = float(np.nanmax(np.abs(signal_mv))) * 1000.0 if signal_mv.size else 0.0
    for step in _STEPS:
        if peak_uv / step <= 32767:
            return float(step)
    raise ValueError(f"values up to {peak_uv / 1000:.0f} mV do not fit 16-bit samples at 1 mV steps")


def write_dicom_ecg(
    record: Any,
    path: str | Path,
    *,
    measurements: Mapping[str, Any] | None = None,
    findings: Sequence[Mapping[str, Any]] = (),
    model: str = "",
    resolution_uv: float | None = None,
) -> Path:
    """Write ``record`` (an :class:`~ecgfounder.io.ECGRecord`) as a DICOM ECG waveform object at
    ``path``; see the module. ``measurements``: our measurement columns (``hr_bpm``, ``pr_ms``...);
    ``findings``: ``[{"label", "probability"}]`` (a row's ``findings``); ``model``: named in the
    findings' text. Returns the path."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    from .._version import __version__
    from .fhir import loinc_values

    signal = np.asarray(record.signal, dtype=np.float64)
    if signal.ndim != 2 or not np.isfinite(signal).all():
        raise ValueError("the record's signal must be (leads, samples) of finite values")
    n_leads, n_samples = signal.shape
    step_uv = _resolution(signal, resolution_uv)
    samples = np.rint(signal * 1000.0 / step_uv)
    if np.abs(samples).max(initial=0) > 32767:
        raise ValueError(f"values do not fit 16-bit samples at {step_uv:g} µV per step")
    twelve = n_leads <= 15 and n_samples <= 16384 and 200 <= record.fs <= 1000
    sop_class = TWELVE_LEAD_ECG if twelve else GENERAL_ECG

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    now = _dt.datetime.now(_dt.timezone.utc)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "ECG"
    ds.Manufacturer = "ecgfounder"
    ds.SoftwareVersions = __version__
    ds.PatientName = ""  # type 2: present, empty; never copied from the input
    ds.PatientID = ""
    ds.PatientBirthDate = ""
    ds.PatientSex = {"M": "M", "F": "F"}.get(getattr(record, "sex", None) or "", "")
    age = getattr(record, "age", None)
    if age is not None and 0 <= age < 1000:
        ds.PatientAge = f"{int(age):03d}Y"
    ds.StudyDate = ds.ContentDate = now.strftime("%Y%m%d")
    ds.StudyTime = ds.ContentTime = now.strftime("%H%M%S")
    ds.AcquisitionDateTime = now.strftime("%Y%m%d%H%M%S")
    ds.StudyID = ""
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.AcquisitionContextSequence = []

    group = Dataset()
    group.MultiplexGroupTimeOffset = 0.0
    group.WaveformOriginality = "ORIGINAL"
    group.NumberOfWaveformChannels = n_leads
    group.NumberOfWaveformSamples = n_samples
    group.SamplingFrequency = float(record.fs)
    group.MultiplexGroupLabel = "RHYTHM"
    channels = []
    for name in record.leads:
        ch = Dataset()
        ch.ChannelLabel = str(name)[:16]
        code, meaning = _SCPECG.get(str(name), (None, str(name)))
        ch.ChannelSourceSequence = [
            _code(code, "SCPECG", meaning) if code else _code(str(name), "99ECGF", meaning)
        ]
        ch.ChannelSensitivity = step_uv
        ch.ChannelSensitivityUnitsSequence = [_code("uV", "UCUM", "microvolt")]
        ch.ChannelSensitivityCorrectionFactor = 1
        ch.ChannelBaseline = 0
        ch.ChannelTimeSkew = 0
        ch.WaveformBitsStored = 16
        channels.append(ch)
    group.ChannelDefinitionSequence = channels
    group.WaveformBitsAllocated = 16
    group.WaveformSampleInterpretation = "SS"
    group.WaveformPaddingValue = b"\x00\x80"
    group.WaveformData = samples.astype("<i2").T.tobytes()  # interleaved: sample by sample
    ds.WaveformSequence = [group]

    annotations = []
    for loinc, display, unit, number in loinc_values(measurements):
        item = Dataset()
        item.ConceptNameCodeSequence = [_code(loinc, "LN", display)]
        item.NumericValue = [number]
        item.MeasurementUnitsCodeSequence = [_code(unit, "UCUM", unit)]
        item.ReferencedWaveformChannels = [1, 0]  # every channel of group 1
        annotations.append(item)
    for finding in findings:
        item = Dataset()
        item.UnformattedTextValue = (
            f"{finding['label']} (probability {float(finding['probability']):.2f}; "
            f"{model or 'an ECGFounder model'}, unconfirmed)"
        )[:1024]
        item.ReferencedWaveformChannels = [1, 0]
        annotations.append(item)
    if annotations:
        ds.WaveformAnnotationSequence = annotations

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    pydicom.dcmwrite(str(tmp), ds, enforce_file_format=True)
    tmp.replace(path)
    return path
