"""HL7 FHIR R4 output: a record's row (``ecgfounder.row/1``) and measurements as a Bundle that a
clinical system can take.

One ``collection`` Bundle per record holds:

* a **Device**: the model (name, our version, its input contract) that produced everything else;
* an **Observation per finding** at or above its threshold: ``code`` the SNOMED CT concept where
  our label mappings give exactly one (``ecgfounder.eval.mappings``), our label name as ``text``
  always; ``valueBoolean`` true; the probability and the threshold as ``component`` quantities;
  ``status`` ``preliminary`` (a model's output, unconfirmed);
* an **Observation per measurement** with its LOINC code and UCUM unit (heart rate 8867-4, PR
  8625-6, QRS duration 8633-0, QT 8634-8, QTc 8636-3, P/QRS/T axes 8626-4/8632-2/8638-1);
* an **Observation of signal quality** when the record carries flags (``valueString``);
* a **DiagnosticReport** (LOINC 11524-6, EKG study) whose ``result`` lists them, ``conclusion``
  the findings in words.

The subject is the caller's (``subject="Patient/123"``), never taken from the file. The JSON is
built from plain dicts (no dependency at run time); the tests validate every resource with the
``fhir.resources`` models (R4B, the FHIR 4.3 release that keeps R4's structure for these
resources). Field mapping: docs/interop.md.
"""

from __future__ import annotations

import datetime as _dt
import math
import uuid
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

__all__ = [
    "record_bundle",
    "monitor_bundle",
    "measurement_bundle",
    "waveform_observation",
    "write_bundles",
    "loinc_values",
    "LOINC_MEASUREMENTS",
    "snomed_code",
]

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
#: our measurement column -> (LOINC code, display, UCUM unit)
LOINC_MEASUREMENTS: dict[str, tuple[str, str, str]] = {
    "hr_bpm": ("8867-4", "Heart rate", "/min"),
    "pr_ms": ("8625-6", "P-R Interval", "ms"),
    "qrs_ms": ("8633-0", "QRS duration", "ms"),
    "qt_ms": ("8634-8", "Q-T interval", "ms"),
    "qtc_bazett_ms": ("8636-3", "Q-T interval corrected", "ms"),
    "qtc_ms": ("8636-3", "Q-T interval corrected", "ms"),
    "p_axis_deg": ("8626-4", "P wave axis", "deg"),
    "qrs_axis_deg": ("8632-2", "QRS axis", "deg"),
    "t_axis_deg": ("8638-1", "T wave axis", "deg"),
}
_EKG_STUDY = {"system": LOINC, "code": "11524-6", "display": "EKG study"}


@lru_cache(maxsize=1)
def _snomed_by_label() -> dict[str, tuple[str, str]]:
    """ECGFounder label -> (SNOMED CT code, name), where a mapping row maps one concept to
    exactly that one label."""
    from ..eval.mapping import load_mapping

    mapping = load_mapping("snomed_cinc2021")
    out: dict[str, tuple[str, str]] = {}
    for code, labels in mapping.targets.items():
        if len(labels) == 1 and labels[0] not in out:
            out[labels[0]] = (code, mapping.names.get(code, ""))
    return out


def snomed_code(label: str) -> tuple[str, str] | None:
    """The SNOMED CT (code, name) of one of our labels, or None where the mappings give none."""
    return _snomed_by_label().get(label)


def _urn() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def _quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": float(value), "unit": unit, "system": UCUM, "code": unit}


def loinc_values(measurements: Mapping[str, Any] | None) -> list[tuple[str, str, str, float]]:
    """``(LOINC code, display, UCUM unit, value)`` of the measurement columns that have one and a
    finite value (FHIR Observations here, DICOM waveform annotations in :mod:`.dicom`)."""
    out = []
    for column, value in (measurements or {}).items():
        if column not in LOINC_MEASUREMENTS or value is None:
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            out.append((*LOINC_MEASUREMENTS[column], number))
    return out


class _Bundle:
    """A collection Bundle being built: the Device first, Observations that refer to it, and a
    DiagnosticReport listing them last."""

    def __init__(self, device: dict[str, Any], subject: str | None, issued: _dt.datetime | None) -> None:
        from .._version import __version__

        self.when = (issued or _dt.datetime.now(_dt.timezone.utc)).isoformat(timespec="seconds")
        self.subject = {"reference": subject} if subject else None
        self.device_url = _urn()
        device = {"resourceType": "Device", **device, "version": [{"value": f"ecgfounder {__version__}"}]}
        self.entries: list[tuple[str, dict[str, Any]]] = [(self.device_url, device)]
        self.results: list[dict[str, str]] = []

    def observation(self, code: dict[str, Any], **fields: Any) -> None:
        obs: dict[str, Any] = {
            "resourceType": "Observation",
            "status": "preliminary",  # a model's output, unconfirmed
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                            "code": "procedure",
                        }
                    ]
                }
            ],
            "code": code,
            "effectiveDateTime": self.when,
            "device": {"reference": self.device_url},
            **fields,
        }
        if self.subject:
            obs["subject"] = self.subject
        url = _urn()
        self.entries.append((url, obs))
        self.results.append({"reference": url})

    def measurements(self, measurements: Mapping[str, Any] | None) -> None:
        for loinc, display, unit, value in loinc_values(measurements):
            self.observation(
                {"coding": [{"system": LOINC, "code": loinc, "display": display}], "text": display},
                valueQuantity=_quantity(value, unit),
            )

    def finish(self, title: str, conclusion: str) -> dict[str, Any]:
        report: dict[str, Any] = {
            "resourceType": "DiagnosticReport",
            "status": "preliminary",
            "code": {"coding": [_EKG_STUDY], "text": title},
            "effectiveDateTime": self.when,
            "issued": self.when,
            "result": self.results,
            "conclusion": conclusion,
        }
        if self.subject:
            report["subject"] = self.subject
        entries = [*self.entries, (_urn(), report)]
        return {
            "resourceType": "Bundle",
            "type": "collection",
            "timestamp": self.when,
            "entry": [{"fullUrl": url, "resource": resource} for url, resource in entries],
        }


def record_bundle(
    row: Mapping[str, Any],
    *,
    subject: str | None = None,
    measurements: Mapping[str, Any] | None = None,
    contract: Any = None,
    thresholds: Mapping[str, float] | None = None,
    issued: _dt.datetime | None = None,
) -> dict[str, Any]:
    """A FHIR R4 Bundle (a dict, JSON-ready) for one record's row in the ``ecgfounder.row/1``
    schema (``Predictor.iter_rows``, ``POST /v1/predict``); ``measurements``: the measurement
    columns (``hr_bpm``, ``pr_ms``...; NaN or None skipped); ``contract``: the model's input
    contract; ``thresholds``: label -> threshold, for the findings' components."""
    model = str(row.get("model") or "ecgfounder model")
    contract_text = row.get("preprocessing") or (contract.describe() if contract else "")
    b = _Bundle(
        {
            "deviceName": [{"name": model, "type": "model-name"}],
            "type": {"text": "ECG interpretation software (ECGFounder model)"},
            "note": [{"text": f"input: {contract_text}"}],
        },
        subject,
        issued,
    )
    for finding in row.get("findings") or []:
        label, p = str(finding["label"]), float(finding["probability"])
        coding = snomed_code(label)
        code: dict[str, Any] = {"text": label}
        if coding:
            code["coding"] = [{"system": SNOMED, "code": coding[0], "display": coding[1]}]
        components = [{"code": {"text": "model probability"}, "valueQuantity": _quantity(p, "1")}]
        if thresholds and label in thresholds:
            components.append(
                {"code": {"text": "decision threshold"}, "valueQuantity": _quantity(thresholds[label], "1")}
            )
        b.observation(code, valueBoolean=True, component=components)
    b.measurements(measurements)
    flags: Sequence[str] = row.get("flags") or []
    if flags:
        b.observation({"text": "ECG signal quality flags"}, valueString="; ".join(flags))
    # the record's key is a path, which may name a person: it stays out of the report
    conclusion = "; ".join(f"{f['label']} ({float(f['probability']):.2f})" for f in row.get("findings") or [])
    return b.finish(
        "ECG interpretation by an ECGFounder model", conclusion or "no finding at or above its threshold"
    )


def write_bundles(
    predictor: Any,
    inputs: Any,
    output: Any,
    *,
    subject: str | None = None,
) -> tuple[int, int]:
    """One Bundle per scored record, as NDJSON (FHIR's bulk format: a Bundle a line) to ``output``
    (a path or an open text file). Records that failed are not written (the caller names them).
    Returns (bundles written, records failed)."""
    import json

    thresholds = dict(zip(predictor.labels, map(float, predictor.thresholds)))
    written = failed = 0
    own = not hasattr(output, "write")
    fh = open(output, "w", encoding="utf-8", newline="\n") if own else output
    try:
        for row in predictor.iter_rows(inputs):
            if row["error"]:
                failed += 1
                continue
            measured = {k: row[k] for k in LOINC_MEASUREMENTS if k in row}
            bundle = record_bundle(
                row,
                subject=subject,
                measurements=measured,
                contract=predictor.contract,
                thresholds=thresholds,
            )
            fh.write(json.dumps(bundle, separators=(",", ":")) + "\n")
            written += 1
    finally:
        if own:
            fh.close()
    return written, failed


def monitor_bundle(
    summary: Mapping[str, Any],
    episodes: Sequence[Any],
    *,
    subject: str | None = None,
    issued: _dt.datetime | None = None,
) -> dict[str, Any]:
    """A FHIR R4 Bundle for a long-recording analysis (:func:`ecgfounder.monitor.monitor`): the
    model as a Device; per label its burden (``valueQuantity`` in %, with the analysed and excluded
    durations as components) and each episode (``valueQuantity`` its duration in s; its start and
    end as offsets from the recording's start, in s: the recording's own clock time is not known
    to every format); the mean heart rate (LOINC 8867-4) when measured; the Holter summary's
    beat counts, heart-rate extremes, pauses and HRV when the beats were analysed; a DiagnosticReport
    listing them. The subject is the caller's, never read from the file."""
    b = _Bundle(
        {
            "deviceName": [{"name": str(summary.get("model") or "ecgfounder model"), "type": "model-name"}],
            "type": {"text": "ECG rhythm analysis software (ECGFounder model)"},
        },
        subject,
        issued,
    )
    analysed = _quantity(float(summary.get("analysed_s", 0.0)), "s")
    excluded = _quantity(float(summary.get("excluded_s", 0.0)), "s")
    for label, share in (summary.get("burden") or {}).items():
        b.observation(
            {"text": f"{label} burden"},
            valueQuantity=_quantity(100.0 * float(share), "%"),
            component=[
                {"code": {"text": "analysed duration"}, "valueQuantity": analysed},
                {"code": {"text": "excluded duration"}, "valueQuantity": excluded},
            ],
        )
    for e in episodes:
        b.observation(
            {"text": f"{e.label} episode"},
            valueQuantity=_quantity(round(float(e.duration_s), 3), "s"),
            component=[
                {
                    "code": {"text": "start, s from the recording's start"},
                    "valueQuantity": _quantity(round(float(e.start_s), 3), "s"),
                },
                {
                    "code": {"text": "end, s from the recording's start"},
                    "valueQuantity": _quantity(round(float(e.end_s), 3), "s"),
                },
                {
                    "code": {"text": "mean model probability"},
                    "valueQuantity": _quantity(float(e.mean_probability), "1"),
                },
            ],
        )
    b.measurements({"hr_bpm": (summary.get("heart_rate") or {}).get("mean_bpm")})
    for text, value, unit in _holter_values(summary):
        b.observation({"text": text}, valueQuantity=_quantity(value, unit))
    counts = summary.get("episodes") or {}
    conclusion = "; ".join(
        f"{label} burden {100 * float(v):.1f}% ({counts.get(label, 0)} episodes)"
        for label, v in (summary.get("burden") or {}).items()
    )
    return b.finish("Long-term ECG rhythm analysis by an ECGFounder model", conclusion or "no label analysed")


def _holter_values(summary: Mapping[str, Any]) -> list[tuple[str, float, str]]:
    """The Holter summary's counts and extremes as (text, value, UCUM unit), those measured."""
    h = summary.get("holter") or {}
    rate = summary.get("heart_rate") or {}
    out: list[tuple[str, Any, str]] = [
        ("Holter: total beats", (h.get("beats") or {}).get("total"), "{beats}"),
        ("Holter: supraventricular ectopic beats", (h.get("beats") or {}).get("S"), "{beats}"),
        ("Holter: ventricular ectopic beats", (h.get("beats") or {}).get("V"), "{beats}"),
        ("Holter: lowest heart rate (1 min mean)", rate.get("min_bpm"), "/min"),
        ("Holter: highest heart rate (1 min mean)", rate.get("max_bpm"), "/min"),
        ("Holter: pauses of 2 s or more", (h.get("pauses") or {}).get("count"), "{pauses}"),
        ("Holter: longest pause", ((h.get("pauses") or {}).get("longest") or {}).get("duration_s"), "s"),
        ("HRV: SDNN", (h.get("hrv") or {}).get("sdnn_ms"), "ms"),
        ("HRV: RMSSD", (h.get("hrv") or {}).get("rmssd_ms"), "ms"),
    ]
    return [(t, float(v), u) for t, v, u in out if v is not None]


def measurement_bundle(
    row: Mapping[str, Any],
    *,
    method: str = "unet",
    subject: str | None = None,
    issued: _dt.datetime | None = None,
) -> dict[str, Any]:
    """A FHIR R4 Bundle for one record's measurements (a row of ``ecgfounder measure``):
    the delineator as the Device, an Observation per measurement with its LOINC code, the
    measurement flags, and a DiagnosticReport whose conclusion is the printed-ECG line."""
    from ..measurement.core import measurements_line

    b = _Bundle(
        {
            "deviceName": [{"name": f"ecgfounder measure ({method} delineation)", "type": "model-name"}],
            "type": {"text": "ECG measurement software (wave delineation)"},
        },
        subject,
        issued,
    )
    b.measurements(row)
    flags = [f for f in str(row.get("measure_flags") or "").split(";") if f]
    if flags:
        b.observation({"text": "ECG measurement flags"}, valueString="; ".join(flags))
    return b.finish("ECG measurements", measurements_line(dict(row)))


def waveform_observation(
    record: Any, *, subject: str | None = None, resolution_uv: float = 1.0, max_samples: int = 600_000
) -> dict[str, Any]:
    """One Observation holding the record's waveform as FHIR ``SampledData`` (a ``component`` per
    lead, values in steps of ``resolution_uv`` µV, ``period`` the sampling interval in ms): the
    conversion of an Apple Watch ECG (Apple Health CSV export) or any record ``read_ecg`` reads.
    Age, sex and the device's own classification are not copied (the subject is the caller's)."""
    import numpy as np

    signal = np.asarray(record.signal, dtype=np.float64)
    if signal.shape[-1] > max_samples:
        raise ValueError(f"{signal.shape[-1]} samples per lead: more than {max_samples} in one Observation")
    steps = np.rint(np.nan_to_num(signal) * 1000.0 / resolution_uv).astype(np.int64)
    components = []
    for name, row in zip(record.leads, steps):
        components.append(
            {
                "code": {"text": f"Lead {name}"},
                "valueSampledData": {
                    "origin": {"value": 0, "unit": "uV", "system": UCUM, "code": "uV"},
                    "period": round(1000.0 / float(record.fs), 6),
                    "factor": float(resolution_uv),
                    "dimensions": 1,
                    "data": " ".join(map(str, row.tolist())),
                },
            }
        )
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",  # the recording as measured, no interpretation
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "procedure",
                    }
                ]
            }
        ],
        "code": {"coding": [_EKG_STUDY], "text": "ECG waveform"},
        "component": components,
    }
    if subject:
        obs["subject"] = {"reference": subject}
    return obs
