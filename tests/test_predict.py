"""Prediction and embedding from Python and the CLI, with the fixture checkpoints on real files."""

from __future__ import annotations

import json
import shutil
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import CliResult, run_cli, small_checkpoint
from ecgfounder import Predictor, load_model, prepare, read_ecg, save_model
from ecgfounder.infer import expand_inputs

EXE = Path(sys.executable).with_name("ecgfounder")


@pytest.fixture(scope="module")
def model_1lead(fixtures_dir, tmp_path_factory):
    """The 1-lead fixture checkpoint saved in our format with label names."""
    m = load_model(small_checkpoint(fixtures_dir, 1, 0))
    path = tmp_path_factory.mktemp("m") / "small-1lead.safetensors"
    save_model(m, path, name="small-1lead", labels=[f"finding {c}" for c in "ABCDEFG"], thresholds=[0.55] * 7)
    return path


@pytest.fixture(scope="module")
def ecg_dir(data_dir, tmp_path_factory):
    """A folder with 8 CinC 2017 records (300 Hz, 9-61 s) and 4 LUDB records (12-lead, 500 Hz)
    in subfolders, plus CinC's label table, which a folder scan must not take for an ECG."""
    root = tmp_path_factory.mktemp("ecgs")
    (root / "cinc").mkdir()
    (root / "ludb" / "deep").mkdir(parents=True)
    cinc = data_dir / "cinc2017-dev"
    for name in ("A00001", "A00002", "A00004", "A00005", "A00006", "A00007", "A00010", "A00011"):
        for ext in (".hea", ".mat"):
            shutil.copy(cinc / f"{name}{ext}", root / "cinc" / f"{name}{ext}")
    shutil.copy(cinc / "REFERENCE.csv", root / "cinc" / "REFERENCE.csv")
    for name in ("1", "2", "3", "4"):
        for ext in (".hea", ".dat"):
            shutil.copy(data_dir / "ludb" / "data" / f"{name}{ext}", root / "ludb" / "deep" / f"{name}{ext}")
    return root


def test_folder_gives_one_row_per_record_with_label_columns(model_1lead, ecg_dir):
    p = Predictor(str(model_1lead), workers=1, batch_size=16, progress=False)
    df = p.predict([ecg_dir])
    assert len(df) == 12 and (df["error"] == "").all()
    assert [Path(r).name for r in df["record"]][:2] == ["A00001.hea", "A00002.hea"]
    labels = [f"finding {c}" for c in "ABCDEFG"]
    assert all(label in df.columns for label in labels)
    probs = df[labels].to_numpy()
    assert np.all((probs >= 0) & (probs <= 1))
    cinc = df[df["record"].str.contains("cinc")]
    assert set(cinc["n_windows"]) >= {3, 6}  # 30 s and 60 s records
    assert (df[df["record"].str.contains("ludb")]["n_windows"] == 1).all()
    assert df["model"].iloc[0] == "small-1lead"
    assert df["preprocessing"].iloc[0].startswith("ecgfounder: 1 lead I, 500 Hz, 5000 samples")
    # findings: labels at or above their stored threshold (0.55), most probable first
    for _, row in df.iterrows():
        hits = [(row[label], label) for label in labels if row[label] >= 0.55]
        expect = "; ".join(f"{label} ({v:.2f})" for v, label in sorted(hits, key=lambda t: -t[0]))
        assert row["findings"] == expect


def test_predictions_equal_the_model_on_prepared_input(model_1lead, data_dir):
    paths = [data_dir / "cinc2017-dev" / "A00005.hea", data_dir / "ludb" / "data" / "9.hea"]
    p = Predictor(str(model_1lead), workers=0, batch_size=4, progress=False)
    df = p.predict(paths)
    win = p.predict(paths, per_window=True)
    model = load_model(model_1lead)
    labels = list(model.info.labels)
    for i, path in enumerate(paths):
        prep = prepare(read_ecg(path), model.info.contract)
        with torch.no_grad():
            probs = torch.sigmoid(model(torch.from_numpy(prep.windows))).numpy()
        np.testing.assert_allclose(df.loc[i, labels].to_numpy(dtype=float), probs.mean(0), atol=1e-6)
        rows = win[win["record"] == str(path)]
        np.testing.assert_allclose(rows[labels].to_numpy(dtype=float), probs, atol=1e-6)
        assert list(rows["start_s"]) == prep.starts_s
    mx = Predictor(str(model_1lead), workers=0, aggregate="max", progress=False).predict(paths[:1])
    assert np.all(mx[labels].to_numpy(dtype=float) >= df.loc[[0], labels].to_numpy(dtype=float) - 1e-7)


def test_records_and_arrays_as_inputs(model_1lead, data_dir):
    p = Predictor(str(model_1lead), workers=0, progress=False)
    rec = read_ecg(data_dir / "cinc2017-dev" / "A00001.hea")
    arr = rec.signal  # (1, 9000) at 300 Hz
    df = p.predict([rec, (arr, 300.0), np.zeros((2, 5000))])
    assert df.loc[0, "error"] == "" and df.loc[1, "error"] == ""
    labels = list(p.labels)
    np.testing.assert_allclose(
        df.loc[0, labels].to_numpy(float), df.loc[1, labels].to_numpy(float), atol=1e-6
    )
    assert "expected (1, samples)" in df.loc[2, "error"]


def test_predictor_from_its_three_parts(model_1lead, data_dir):
    """Predictor(backend, prepare, scoring): the parts made once, changed as dataclasses, and the
    same rows as the one-call form with the same options."""
    from dataclasses import replace

    from ecgfounder.infer import predictor_parts

    path = data_dir / "cinc2017-dev" / "A00005.hea"
    backend, prep, scoring = predictor_parts(str(model_1lead))
    assert prep.contract.fs == 500 and scoring.labels[0] == "finding A" and scoring.aggregate == "mean"
    parts = Predictor(
        backend,
        replace(prep, stride_s=2.5),
        replace(scoring, aggregate="max", thresholds=np.full(7, 0.3)),
        workers=0,
        progress=False,
    ).predict(path)
    one_call = Predictor(
        str(model_1lead), stride_s=2.5, aggregate="max", thresholds=0.3, workers=0, progress=False
    ).predict(path)
    assert parts.loc[0, "n_windows"] == one_call.loc[0, "n_windows"] > 6  # 2.5 s stride on 30 s
    labels = list(scoring.labels)
    np.testing.assert_allclose(parts.loc[0, labels].to_numpy(float), one_call.loc[0, labels].to_numpy(float))
    assert parts.loc[0, "findings"] == one_call.loc[0, "findings"]
    # model options belong to the parts once they are made
    with pytest.raises(TypeError, match="stride_s: options for making the parts"):
        Predictor(backend, prep, scoring, stride_s=5)
    # parts that do not fit the model are refused
    with pytest.raises(ValueError, match="3 labels to score, the model has 7 outputs"):
        Predictor(backend, prep, replace(scoring, labels=("a", "b", "c"), thresholds=np.full(3, 0.5)))


def test_wrong_model_for_the_input_is_an_error_not_a_guess(fixtures_dir, data_dir):
    p = Predictor(load_model(small_checkpoint(fixtures_dir, 12, 0)), workers=0, progress=False)
    df = p.predict([data_dir / "cinc2017-dev" / "A00001.hea", data_dir / "ludb" / "data" / "1.hea"])
    assert "needs leads I II III aVR aVL aVF V1" in df.loc[0, "error"]
    assert np.isnan(df.loc[0, "output_0"]) and df.loc[1, "error"] == ""


def test_thresholds_given_by_the_user(model_1lead, data_dir):
    path = data_dir / "cinc2017-dev" / "A00001.hea"
    none = Predictor(str(model_1lead), workers=0, thresholds=1.01, progress=False).predict(path)
    assert none.loc[0, "findings"] == ""
    one = Predictor(str(model_1lead), workers=0, thresholds={"finding A": 0.0}, progress=False).predict(path)
    assert "finding A (" in one.loc[0, "findings"]
    with pytest.raises(ValueError, match="unknown labels"):
        Predictor(str(model_1lead), thresholds={"nope": 0.1})


def test_embed_records_and_windows(model_1lead, data_dir):
    p = Predictor(str(model_1lead), workers=1, progress=False)
    paths = [data_dir / "cinc2017-dev" / "A00001.hea", data_dir / "nonexistent.hea"]
    emb = p.embed(paths)
    assert emb.vectors.shape == (1, 64) and emb.records == [str(paths[0])]
    assert "no such file" in emb.errors[str(paths[1])]
    per = p.embed(paths[:1], per_window=True)
    assert per.vectors.shape == (3, 64) and per.windows == [0, 1, 2] and per.start_s == [0.0, 10.0, 20.0]
    np.testing.assert_allclose(per.vectors.mean(0), emb.vectors[0], atol=1e-6)
    model = load_model(model_1lead)
    prep = prepare(read_ecg(paths[0]), model.info.contract)
    with torch.no_grad():
        np.testing.assert_allclose(
            per.vectors, model.forward_features(torch.from_numpy(prep.windows)).numpy(), atol=1e-6
        )


def test_expand_inputs_globs_manifest_and_multi_exam_hdf5(ecg_dir, tmp_path):
    import h5py

    got = [Path(s.path).name for s in expand_inputs([str(ecg_dir / "cinc" / "A0000*")])]
    assert got == ["A00001.hea", "A00002.hea", "A00004.hea", "A00005.hea", "A00006.hea", "A00007.hea"]
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,label\n" + f"{ecg_dir}/cinc/A00001.hea,N\n" + "rel/x.hea,A\n")
    got = [s.path for s in expand_inputs([manifest])]
    assert got == [f"{ecg_dir}/cinc/A00001.hea", str(tmp_path / "rel" / "x.hea")]
    with h5py.File(tmp_path / "exams.h5", "w") as f:
        f["tracings"] = np.zeros((3, 4096, 12), dtype=np.float32)
    assert [s.key for s in expand_inputs([tmp_path / "exams.h5"])] == [
        f"{tmp_path / 'exams.h5'}[{i}]" for i in range(3)
    ]


def _cli(*args: str) -> CliResult:
    return run_cli(*args)


@pytest.mark.slow
def test_cli_predict_with_a_corrupt_file_in_the_batch(model_1lead, ecg_dir, tmp_path):
    bad = tmp_path / "corrupt.hea"
    bad.write_text("corrupt 1 300 9000\ncorrupt.mat 16+24 1000/mV 16 0 0 0 0 ECG\n")
    (tmp_path / "corrupt.mat").write_bytes(b"\x00" * 10)
    out = tmp_path / "pred.csv"
    res = _cli(
        "predict",
        str(ecg_dir / "cinc"),
        str(bad),
        "--model",
        str(model_1lead),
        "-o",
        str(out),
        "--workers",
        "1",
    )
    assert res.returncode == 1, res.stderr
    assert f"error: {bad}: " in res.stderr and "Traceback" not in res.stderr
    import pandas as pd

    df = pd.read_csv(out, keep_default_na=False)
    assert len(df) == 9 and (df["error"] != "").sum() == 1
    assert df.loc[df["record"] == str(bad), "error"].iloc[0].startswith("cannot read WFDB record")
    res = _cli(
        "predict",
        str(ecg_dir / "cinc" / "A00001.hea"),
        "--model",
        str(model_1lead),
        "--format",
        "jsonl",
        "--per-window",
        "--workers",
        "0",
    )
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["window"] for r in rows] == [0, 1, 2] and rows[1]["start_s"] == 10.0


@pytest.mark.slow
def test_cli_parquet_and_embed_outputs(model_1lead, ecg_dir, tmp_path):
    import pandas as pd

    res = _cli(
        "predict", str(ecg_dir / "ludb"), "--model", str(model_1lead), "-o", str(tmp_path / "p.parquet")
    )
    assert res.returncode == 0, res.stderr
    df = pd.read_parquet(tmp_path / "p.parquet")
    assert len(df) == 4 and "finding A" in df.columns
    res = _cli("embed", str(ecg_dir / "cinc"), "--model", str(model_1lead), "-o", str(tmp_path / "e.npy"))
    assert res.returncode == 0, res.stderr
    vecs = np.load(tmp_path / "e.npy")
    ids = pd.read_csv(tmp_path / "e.ids.csv")
    assert vecs.shape == (8, 64) and len(ids) == 8 and ids["record"].str.endswith(".hea").all()
    res = _cli(
        "embed",
        str(ecg_dir / "cinc" / "A00005.hea"),
        "--model",
        str(model_1lead),
        "--per-window",
        "-o",
        str(tmp_path / "e.parquet"),
    )
    emb = pd.read_parquet(tmp_path / "e.parquet")
    assert list(emb["window"]) == list(range(6)) and len(emb["embedding"].iloc[0]) == 64


@pytest.mark.slow
def test_memory_stays_flat_over_200_files(model_1lead, data_dir):
    names = (data_dir / "cinc2017-dev" / "RECORDS").read_text().split()
    files = [data_dir / "cinc2017-dev" / f"{n}.hea" for n in names]
    p = Predictor(str(model_1lead), workers=0, batch_size=32, progress=False)

    def peak(paths: list[Path]) -> int:
        tracemalloc.start()
        n = sum(1 for _ in p.iter_predict(paths))
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert n == len(paths)
        return top

    small, large = peak(files[:20]), peak(files[:200])
    # 10x the files: the peak may not grow with the count (a list of all signals would add ~20 MB)
    assert large < small * 1.5 + 2_000_000, (small, large)


def test_writers_and_thresholds_in_process(tmp_path, data_dir):
    """The writers the CLI uses, and per-label threshold files, called from Python."""
    import json as _json

    import pandas as pd

    from ecgfounder.errors import ECGFounderError
    from ecgfounder.eval.thresholds import read_thresholds
    from ecgfounder.infer.writers import EmbeddingWriter, TableWriter, table_format

    predictor = Predictor("cinc2017-rhythm-tiny", workers=0, progress=False)
    files = [data_dir / "cinc2017-dev" / f"A0000{i}.hea" for i in (1, 4)]
    for fmt in ("csv", "jsonl"):
        out = tmp_path / f"p.{fmt}"
        assert table_format(str(out), None) == fmt
        writer = TableWriter(str(out), fmt)
        for row in predictor.iter_predict(files):
            writer.write(row)
        writer.close()
        table = pd.read_csv(out) if fmt == "csv" else pd.read_json(out, lines=True)
        assert writer.count == 2 and list(table["record"]) == [str(f) for f in files]
        np.testing.assert_allclose(table[["normal", "AF", "other", "noisy"]].sum(1), 1.0, atol=1e-5)
    emb = EmbeddingWriter(str(tmp_path / "e.npy"))
    for key, window, start, vec, _err in predictor.iter_embed(files):
        emb.write(key, window, start, vec)
    emb.close()
    assert np.load(tmp_path / "e.npy").shape == (2, 64)
    (tmp_path / "t.json").write_text(_json.dumps({"AF": 0.3, "normal": 0.6}))
    (tmp_path / "t.csv").write_text("label,threshold\nAF,0.3\n")
    assert read_thresholds(str(tmp_path / "t.json")) == {"AF": 0.3, "normal": 0.6}
    assert read_thresholds(str(tmp_path / "t.csv")) == {"AF": 0.3}
    (tmp_path / "bad.csv").write_text("x,y\n1,2\n")
    with pytest.raises(ECGFounderError, match="cannot read thresholds"):
        read_thresholds(str(tmp_path / "bad.csv"))
