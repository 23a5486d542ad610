"""FHIR R4 output (issue 33): a Bundle per record, validated by the fhir.resources models (a real
validator of the structure and value types, not a string check)."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli

R4B = pytest.importorskip("fhir.resources.R4B.bundle", reason="fhir.resources comes with the test extra")

from ecgfounder import Predictor  # noqa: E402
from ecgfounder.interop.fhir import LOINC_MEASUREMENTS, record_bundle, snomed_code  # noqa: E402


def _validate(bundle: dict) -> dict[str, list[dict]]:
    parsed = R4B.Bundle.model_validate(bundle)  # raises on any structural or type error
    assert parsed.type == "collection"
    by_type: dict[str, list[dict]] = {}
    for entry in bundle["entry"]:
        by_type.setdefault(entry["resource"]["resourceType"], []).append(entry["resource"])
    urls = {e["fullUrl"] for e in bundle["entry"]}
    report = by_type["DiagnosticReport"][0]
    assert {r["reference"] for r in report["result"]} <= urls  # every reference resolves inside
    for obs in by_type.get("Observation", []):
        assert obs["device"]["reference"] in urls and obs["status"] == "preliminary"
    return by_type


def test_a_12_lead_record_with_measurements(data_dir, tmp_path):
    out = tmp_path / "b.ndjson"
    r = run_cli(
        "predict",
        data_dir / "ludb" / "data" / "1.hea",
        "--model",
        "cinc2017-rhythm-tiny",
        "--measure",
        "--format",
        "fhir",
        "--subject",
        "Patient/example",
        "-o",
        out,
    )
    assert r.returncode == 0, r.stderr
    bundles = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(bundles) == 1
    by_type = _validate(bundles[0])
    _bindings(bundles[0])
    assert len(by_type["Device"]) == 1 and "cinc2017-rhythm-tiny" in json.dumps(by_type["Device"])
    loinc = {
        c["code"]
        for o in by_type["Observation"]
        for c in o["code"].get("coding", [])
        if "loinc" in c["system"]
    }
    assert {"8867-4", "8625-6", "8633-0", "8634-8", "8636-3", "8632-2"} <= loinc
    hr = next(o for o in by_type["Observation"] if o["code"].get("coding", [{}])[0].get("code") == "8867-4")
    assert hr["valueQuantity"]["unit"] == "/min" and 30 < hr["valueQuantity"]["value"] < 200
    finding = next(o for o in by_type["Observation"] if o.get("valueBoolean"))
    assert [c["code"]["text"] for c in finding["component"]] == ["model probability", "decision threshold"]
    assert all(o["subject"]["reference"] == "Patient/example" for o in by_type["Observation"])
    assert by_type["DiagnosticReport"][0]["code"]["coding"][0]["code"] == "11524-6"


def test_a_single_lead_record_without_subject_and_the_snomed_codes(data_dir):
    pred = Predictor("cinc2017-rhythm-tiny", workers=0, progress=False)
    row = next(pred.iter_rows([data_dir / "cinc2017-dev" / "A00004.hea"]))
    bundle = record_bundle(row, contract=pred.contract)
    by_type = _validate(bundle)
    assert "subject" not in by_type["DiagnosticReport"][0]  # left to the caller, never from the file
    assert by_type["DiagnosticReport"][0]["conclusion"].startswith("AF (")
    # where our label mappings give exactly one SNOMED CT concept, the finding carries it
    assert snomed_code("ATRIAL FIBRILLATION") == ("164889003", "atrial fibrillation")
    af = record_bundle(
        {"findings": [{"label": "ATRIAL FIBRILLATION", "probability": 0.9}], "flags": ["noise:II"]}
    )
    types = _validate(af)
    coded = types["Observation"][0]["code"]
    assert (
        coded["coding"][0]
        == {"system": "http://snomed.info/sct", "code": "164889003", "display": "atrial fibrillation"}
        and coded["text"] == "ATRIAL FIBRILLATION"
    )
    assert types["Observation"][1]["valueString"] == "noise:II"
    assert set(LOINC_MEASUREMENTS) >= {"hr_bpm", "pr_ms", "qrs_ms", "qt_ms", "qtc_bazett_ms"}


# fhir.resources checks structure and value types, not terminology bindings: the required ones we
# use are checked here against the R4 value sets.
OBSERVATION_STATUS = {
    "registered",
    "preliminary",
    "final",
    "amended",
    "corrected",
    "cancelled",
    "entered-in-error",
    "unknown",
}
REPORT_STATUS = OBSERVATION_STATUS | {"partial", "appended"}
DEVICE_NAME_TYPE = {
    "udi-label-name",
    "user-friendly-name",
    "patient-reported-name",
    "manufacturer-name",
    "model-name",
    "other",
}


def _bindings(bundle: dict) -> None:
    for entry in bundle["entry"]:
        res = entry["resource"]
        if res["resourceType"] == "Observation":
            assert res["status"] in OBSERVATION_STATUS
        elif res["resourceType"] == "DiagnosticReport":
            assert res["status"] in REPORT_STATUS
        elif res["resourceType"] == "Device":
            assert all(n["type"] in DEVICE_NAME_TYPE for n in res["deviceName"])


@pytest.mark.slow  # a server and two uploads: ~5 s
def test_the_service_answers_fhir_when_asked(data_dir):
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("fastapi")
    from conftest import serving
    from ecgfounder import load_model
    from ecgfounder.serve import ServeSettings

    cinc = data_dir / "cinc2017-dev" / "A00004"
    files = [("file", (p.name, p.read_bytes())) for p in (cinc.with_suffix(".hea"), cinc.with_suffix(".mat"))]
    with serving(
        ServeSettings(model="cinc2017-rhythm-tiny", workers=1), load_model("cinc2017-rhythm-tiny")
    ) as (
        url,
        _,
    ):
        r = httpx.post(
            f"{url}/v1/predict",
            params={"measure": True},
            files=files,
            headers={"Accept": "application/fhir+json"},
            timeout=60,
        )
        plain = httpx.post(f"{url}/v1/predict", files=files, timeout=60).json()
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/fhir+json"), r.text[
        :300
    ]
    bundle = r.json()
    by_type = _validate(bundle)
    _bindings(bundle)
    findings = [o for o in by_type["Observation"] if o.get("valueBoolean")]
    assert [o["code"]["text"] for o in findings] == [f["label"] for f in plain["findings"]] == ["AF"]
    assert any(c.get("code") == "8867-4" for o in by_type["Observation"] for c in o["code"].get("coding", []))


def test_measure_writes_a_bundle_per_record(data_dir, tmp_path):
    out = tmp_path / "m.ndjson"
    files = [data_dir / "ludb" / "data" / f"{i}.hea" for i in (1, 2)]
    r = run_cli(
        "measure", *files, tmp_path / "missing.hea", "--format", "fhir", "--subject", "Patient/p", "-o", out
    )
    assert r.returncode == 1 and "missing.hea" in r.stderr  # the bad input is named, the others written
    bundles = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(bundles) == 2
    for bundle in bundles:
        by_type = _validate(bundle)
        _bindings(bundle)
        codes = {c["code"] for o in by_type["Observation"] for c in o["code"].get("coding", [])}
        assert {"8867-4", "8625-6", "8633-0", "8634-8"} <= codes
        assert by_type["DiagnosticReport"][0]["conclusion"].startswith("HR ")
