"""The HTTP service over real HTTP on loopback, with real files, and a hostile-input pass."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")

from conftest import serving  # noqa: E402
from ecgfounder import load_model  # noqa: E402
from ecgfounder.serve import ServeSettings  # noqa: E402


@pytest.fixture(scope="module")
def server():
    settings = ServeSettings(model="cinc2017-rhythm-tiny", max_upload_mb=2, max_duration_s=120, timeout_s=60)
    with serving(settings, load_model("cinc2017-rhythm-tiny")) as (url, app):
        yield url, app


def _wfdb_files(base: Path) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [
        ("file", (p.name, p.read_bytes(), "application/octet-stream"))
        for p in (base.with_suffix(".hea"), base.with_suffix(".dat"))
    ]


def test_health_models_and_openapi(server):
    url, _ = server
    assert httpx.get(f"{url}/healthz").json()["status"] == "ok"
    m = httpx.get(f"{url}/v1/models").json()["models"][0]
    assert m["name"] == "cinc2017-rhythm-tiny" and m["labels"] == ["normal", "AF", "other", "noisy"]
    assert m["aggregate"] == "logit"
    assert m["contract"] == {
        "fs": 500.0,
        "n_samples": 5000,
        "leads": ["I"],
        "units": "mV",
        "preprocessing": "ecgfounder",
    }
    spec = httpx.get(f"{url}/openapi.json").json()
    assert {"/v1/predict", "/v1/embed", "/v1/models", "/healthz", "/v1/plot", "/v1/explain"} <= set(
        spec["paths"]
    )


def test_predict_upload_matches_the_predictor(server, data_dir):
    from ecgfounder import Predictor

    url, _ = server
    base = data_dir / "ludb" / "data" / "1"
    r = httpx.post(f"{url}/v1/predict", files=_wfdb_files(base), timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    ref = (
        Predictor("cinc2017-rhythm-tiny", workers=0, progress=False)
        .predict([base.with_suffix(".hea")])
        .iloc[0]
    )
    for label in ("normal", "AF", "other", "noisy"):
        assert body["probabilities"][label] == pytest.approx(float(ref[label]), abs=1e-5)
    assert body["top_findings"][0]["label"] == ref["findings"].split(" (")[0] or ref["findings"] == ""
    assert (
        body["provenance"]["model"] == "cinc2017-rhythm-tiny"
        and "500 Hz" in body["provenance"]["preprocessing"]
    )
    assert body["leads"][:3] == ["I", "II", "III"] and body["n_windows"] == 1
    # a single-file format (CinC's .mat needs its .hea: send both) and per-window output
    cinc = data_dir / "cinc2017-dev" / "A00004"
    files = [("file", (p.name, p.read_bytes())) for p in (cinc.with_suffix(".hea"), cinc.with_suffix(".mat"))]
    r = httpx.post(f"{url}/v1/predict", params={"per_window": True}, files=files, timeout=60)
    assert r.status_code == 200 and len(r.json()["windows"]) == r.json()["n_windows"] >= 3
    assert r.json()["top_findings"][0]["label"] == "AF"
    # the record is its windows combined as the model says (bundled: logit, a normalised geometric mean)
    labels = ["normal", "AF", "other", "noisy"]
    w = np.array([[win["probabilities"][k] for k in labels] for win in r.json()["windows"]])
    geo = np.exp(np.log(w).mean(0))
    np.testing.assert_allclose([r.json()["probabilities"][k] for k in labels], geo / geo.sum(), atol=1e-5)


def test_the_service_and_predict_give_the_same_row(server, data_dir):
    """Issue 32: one row schema (ecgfounder.row/1) from the service, from Python and, flattened,
    from the CLI: every shared field equal for the same file (the record key aside: the service
    names the upload, the CLI the path)."""
    from ecgfounder import Predictor
    from ecgfounder.infer.rows import ROW_SCHEMA, flatten_row

    url, _ = server
    cinc = data_dir / "cinc2017-dev" / "A00004"
    files = [("file", (p.name, p.read_bytes())) for p in (cinc.with_suffix(".hea"), cinc.with_suffix(".mat"))]
    body = httpx.post(f"{url}/v1/predict", files=files, timeout=60).json()
    pred = Predictor("cinc2017-rhythm-tiny", workers=0, progress=False)
    row = next(pred.iter_rows([cinc.with_suffix(".hea")]))
    assert body["schema"] == row["schema"] == ROW_SCHEMA
    for key in ("findings", "flags", "error", "model", "preprocessing", "n_windows", "duration_s"):
        if key == "findings":
            assert [f["label"] for f in body[key]] == [f["label"] for f in row[key]] != []
            np.testing.assert_allclose(
                [f["probability"] for f in body[key]], [f["probability"] for f in row[key]], atol=1e-5
            )
        else:
            assert body[key] == row[key], key
    assert body["probabilities"].keys() == row["probabilities"].keys()
    np.testing.assert_allclose(
        list(body["probabilities"].values()), list(row["probabilities"].values()), atol=1e-5
    )
    assert body["top_findings"][0]["label"] == row["findings"][0]["label"]  # the v1 name, kept
    # the CLI's CSV row is the same row flattened
    table = pred.predict([cinc.with_suffix(".hea")]).iloc[0]
    flat = flatten_row(row)
    assert table["findings"] == flat["findings"] and table["findings"].startswith("AF (")
    assert list(table.index) == list(flat)


def test_json_array_and_embed(server, data_dir):
    import wfdb

    url, _ = server
    sig, fields = wfdb.rdsamp(str(data_dir / "cinc2017-dev" / "A00004"))
    body = {"signal": [sig[:, 0].tolist()], "fs": fields["fs"], "leads": ["I"], "units": "mV"}
    r = httpx.post(f"{url}/v1/predict", json=body, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["top_findings"][0]["label"] == "AF"
    e = httpx.post(f"{url}/v1/embed", json=body, timeout=60).json()
    assert e["dim"] == 64 and len(e["embedding"]) == 64 and np.isfinite(e["embedding"]).all()


def test_plot_and_explain_endpoints(server, data_dir):
    url, _ = server
    files = _wfdb_files(data_dir / "ludb" / "data" / "1")
    svg = httpx.post(f"{url}/v1/plot", files=files, timeout=60)
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg")
    assert b"25 mm/s" in svg.content and b"aVR" in svg.content
    png = httpx.post(f"{url}/v1/plot", params={"format": "png"}, files=files, timeout=60)
    assert png.content[:8] == b"\x89PNG\r\n\x1a\n"
    ex = httpx.post(f"{url}/v1/explain", params={"label": "normal", "steps": 8}, files=files, timeout=60)
    assert ex.status_code == 200, ex.text
    d = ex.json()
    assert d["label"] == "normal" and d["lead_importance"] == {"I": 1.0} and "<svg" in d["svg"]


def _zip_bomb() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("x.hea", b"0" * 50_000_000)
    return buf.getvalue()


HOSTILE = {
    "huge upload": dict(files={"file": ("big.npy", b"\0" * 3_000_000)}),
    "wrong content type": dict(content=b"hello", headers={"content-type": "text/plain"}),
    "no content type": dict(content=b"hello"),
    "zip bomb": dict(files={"file": ("bomb.zip", _zip_bomb())}),
    "XML external entity": dict(
        files={
            "file": (
                "x.xml",
                b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY e SYSTEM '
                b'"file:///etc/passwd">]><RestingECG>&e;</RestingECG>',
            )
        }
    ),
    "entity expansion": dict(
        files={
            "file": (
                "x.xml",
                b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaa">'
                b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><r>&b;</r>',
            )
        }
    ),
    "NaN-filled array": dict(
        content=b'{"signal": [[NaN, NaN, NaN, NaN]], "fs": 500, "leads": ["I"]}',
        headers={"content-type": "application/json"},
    ),
    "0 Hz sampling rate": dict(json={"signal": [[0.1] * 5000], "fs": 0, "leads": ["I"]}),
    "negative sampling rate": dict(json={"signal": [[0.1] * 5000], "fs": -500, "leads": ["I"]}),
    "string signal": dict(json={"signal": "abc", "fs": 500}),
    "ragged signal": dict(json={"signal": [[1, 2, 3], [1]], "fs": 500, "leads": ["I", "II"]}),
    "deeply nested JSON": dict(
        content=b"[" * 100_000 + b"]" * 100_000, headers={"content-type": "application/json"}
    ),
    "broken JSON": dict(content=b'{"signal": [1, 2', headers={"content-type": "application/json"}),
    "garbage .hea": dict(files={"file": ("r.hea", b"\xff\xfe garbage \x00\x01")}),
    "header without data": dict(files={"file": ("r.hea", b"r 1 500 5000\nr.dat 16 200 16 0 0 0 0 I\n")}),
    "unsupported file type": dict(files={"file": ("evil.exe", b"MZ\x90\x00")}),
    "path traversal name": dict(files={"file": ("../../etc/x.npy", b"\x93NUMPY garbage")}),
    "too long recording": dict(json={"signal": [[0.0] * (500 * 200)], "fs": 500, "leads": ["I"]}),
    "empty multipart": dict(files={"other": ("a.txt", b"x")}),
    "bad npy": dict(
        files={
            "file": (
                "a.npy",
                b"\x93NUMPY\x01\x00\x76\x00{'descr': '<f4', 'fortran_order': False, "
                b"'shape': (999999999999,), }",
            )
        }
    ),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_input_is_a_4xx_json_error_and_the_server_stays_healthy(server, case):
    url, _ = server
    r = httpx.post(f"{url}/v1/predict", timeout=60, **HOSTILE[case])
    assert 400 <= r.status_code < 500, (case, r.status_code, r.text[:300])
    err = r.json()["error"]
    assert err["code"] and err["message"] and "Traceback" not in r.text
    if case in ("huge upload", "zip bomb"):
        assert r.status_code == 413 and "MB" in err["message"]
    if case == "too long recording":
        assert r.status_code == 422 and "120 s limit" in err["message"]
    if case == "0 Hz sampling rate":
        assert err["code"] == "bad_sampling_rate"
    assert httpx.get(f"{url}/healthz").json()["status"] == "ok"


def test_no_temporary_files_are_left_behind(server, data_dir):
    import tempfile

    url, _ = server
    before = set(Path(tempfile.gettempdir()).glob("ecgfounder-serve-*"))
    httpx.post(f"{url}/v1/predict", files=_wfdb_files(data_dir / "ludb" / "data" / "2"), timeout=60)
    httpx.post(f"{url}/v1/predict", files={"file": ("r.hea", b"junk")}, timeout=60)
    assert set(Path(tempfile.gettempdir()).glob("ecgfounder-serve-*")) == before


def test_concurrent_requests_share_model_batches(server, data_dir):
    from concurrent.futures import ThreadPoolExecutor

    url, app = server
    files = _wfdb_files(data_dir / "ludb" / "data" / "3")
    batcher = app.state.batcher
    b0, w0 = batcher.batches, batcher.windows
    with ThreadPoolExecutor(8) as pool:
        rs = list(pool.map(lambda _: httpx.post(f"{url}/v1/predict", files=files, timeout=60), range(16)))
    assert all(r.status_code == 200 for r in rs)
    probs = np.array([list(r.json()["probabilities"].values()) for r in rs])
    np.testing.assert_allclose(probs, probs[:1].repeat(len(probs), 0), atol=1e-5)  # batching changes nothing
    assert batcher.windows - w0 == 16 and batcher.batches - b0 < 16  # some requests shared a batch


def test_api_key_and_cors_settings(data_dir):
    settings = ServeSettings(
        model="cinc2017-rhythm-tiny", api_key="s3cret", cors_origins=["http://example.org"]
    )
    with serving(settings, load_model("cinc2017-rhythm-tiny")) as (url, _):
        assert httpx.get(f"{url}/healthz").status_code == 200  # liveness stays open
        r = httpx.get(f"{url}/v1/models")
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorised"
        assert httpx.get(f"{url}/v1/models", headers={"X-API-Key": "wrong"}).status_code == 401
        assert httpx.get(f"{url}/v1/models", headers={"X-API-Key": "s3cret"}).status_code == 200
        pre = httpx.options(
            f"{url}/v1/models",
            headers={"Origin": "http://example.org", "Access-Control-Request-Method": "GET"},
        )
        assert pre.headers.get("access-control-allow-origin") == "http://example.org"


def test_cors_is_off_by_default(server):
    url, _ = server
    r = httpx.get(f"{url}/v1/models", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in r.headers


def test_a_header_without_its_signal_file_is_a_422_that_says_so(server):
    url, _ = server
    r = httpx.post(
        f"{url}/v1/predict",
        files={"file": ("r.hea", b"r 1 500 5000\nr.dat 16 200 16 0 0 0 0 I\n")},
        timeout=60,
    )
    assert r.status_code == 422
    err = r.json()["error"]
    assert "r.dat named by r.hea is missing" in err["message"] and err["file"] == "r.hea"
    assert "/tmp" not in r.text and "ecgfounder-serve-" not in r.text


@pytest.mark.slow
def test_serve_runs_an_exported_onnx_model(bundled_onnx, data_dir):
    """The service takes any backend: an ONNX export answers like the PyTorch model; explanations,
    which need gradients, are refused with a clear 422."""
    onnx_file = bundled_onnx
    files = _wfdb_files(data_dir / "ludb" / "data" / "1")
    with serving(ServeSettings(model=str(onnx_file), workers=1), None) as (url, _):
        r = httpx.post(f"{url}/v1/predict", files=files, timeout=60)
        assert r.status_code == 200, r.text
        assert r.json()["provenance"]["runtime"] == "onnxruntime"
        probs = r.json()["probabilities"]
        ex = httpx.post(f"{url}/v1/explain", files=files, timeout=60)
        assert ex.status_code == 422 and ex.json()["error"]["code"] == "explain_unavailable"
    with serving(
        ServeSettings(model="cinc2017-rhythm-tiny", workers=1), load_model("cinc2017-rhythm-tiny")
    ) as (url, _):
        ref = httpx.post(f"{url}/v1/predict", files=files, timeout=60).json()["probabilities"]
    for label, p in ref.items():
        assert probs[label] == pytest.approx(p, abs=1e-4)
