"""Archive runs in a run directory: the same rows as the single-machine path (local and Ray Data),
every record exactly once after a killed driver or a killed worker, bad files as error rows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ecgfounder.infer import Predictor
from ecgfounder.infer.archive import ArchiveError, archive_status, collect_rows, finalize, run_archive

LABELS = ["normal", "AF", "other", "noisy"]
MODEL = "cinc2017-rhythm-tiny"


@pytest.fixture(scope="module")
def inputs(data_dir, tmp_path_factory) -> list[str]:
    """40 CinC 2017 recordings with two bad files among them."""
    bad = tmp_path_factory.mktemp("bad")
    (bad / "junk.hea").write_text("this is not a header\n")
    (bad / "empty.csv").write_text("")
    files = sorted(str(p) for p in (data_dir / "cinc2017-dev").glob("A0*.hea"))[:40]
    files.insert(7, str(bad / "junk.hea"))
    files.insert(30, str(bad / "empty.csv"))
    return files


@pytest.fixture(scope="module")
def reference(inputs) -> pd.DataFrame:
    return Predictor(MODEL, workers=0, progress=False).predict(inputs)


def _same_rows(got: pd.DataFrame, ref: pd.DataFrame) -> None:
    assert list(got.columns) == list(ref.columns)
    assert list(got["record"]) == list(ref["record"])  # each record once, in input order
    np.testing.assert_allclose(got[LABELS].to_numpy(float), ref[LABELS].to_numpy(float), atol=1e-6)
    for col in ("findings", "flags", "error", "n_windows"):
        a = got[col].fillna("").astype(str).replace("nan", "")
        b = ref[col].fillna("").astype(str).replace("nan", "")
        assert list(a.str.replace(".0", "", regex=False)) == list(b.str.replace(".0", "", regex=False)), col


def test_local_run_dir_gives_the_single_machine_rows_and_refuses_another_run(inputs, reference, tmp_path):
    run = tmp_path / "run"
    s = run_archive(MODEL, inputs, run, block_size=8, progress=False)
    assert (s.blocks, s.blocks_scored, s.records, s.failed) == (6, 6, 42, 2)
    _same_rows(collect_rows(run), reference)
    bad = collect_rows(run).set_index("record").loc[[inputs[7], inputs[30]], "error"]
    assert bad.str.len().gt(0).all()  # the bad files are error rows naming the reason
    # resuming a complete run scores nothing; another model or other inputs are refused
    again = run_archive(MODEL, None, run, progress=False)
    assert again.blocks_scored == 0 and again.blocks_before == 6
    with pytest.raises(ArchiveError, match="another run"):
        run_archive("cinc2017-rhythm", inputs, run, progress=False)
    with pytest.raises(ArchiveError, match="other inputs"):
        run_archive(MODEL, inputs[:-1], run, progress=False)
    out = finalize(run, tmp_path / "all.csv")
    assert len(pd.read_csv(out)) == 42
    # embeddings: the same vectors as embed, failed records left out of the final file
    emb = run_archive(MODEL, inputs[:10], tmp_path / "emb", task="embed", block_size=4, progress=False)
    assert emb.failed == 1
    table = pd.read_parquet(finalize(tmp_path / "emb", tmp_path / "emb.parquet"))
    want = Predictor(MODEL, workers=0, progress=False).embed(inputs[:10])
    assert list(table["record"]) == want.records
    np.testing.assert_allclose(np.stack(table["embedding"]), want.vectors, atol=1e-6)


@pytest.mark.slow  # ~10 s: two command processes
def test_killed_driver_resumes_to_the_same_rows_none_twice_none_lost(inputs, reference, tmp_path):
    run = tmp_path / "run"
    args = [sys.executable, "-m", "ecgfounder", "predict", *inputs, "--model", MODEL]
    args += ["--run-dir", str(run), "--block-size", "2", "--no-progress", "--workers", "0"]
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list((run / "parts").glob("part-*.parquet"))) < 4:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # kill -9, mid-run
    proc.wait()
    first = archive_status(run)
    assert 4 <= first.blocks_done < first.blocks, first
    with pytest.raises(ArchiveError, match="not done yet"):
        collect_rows(run)
    res = subprocess.run(
        args + ["-o", str(tmp_path / "all.csv")], capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 1, res.stderr  # 1: two inputs failed (error rows), the rest scored
    assert f"{first.blocks_done} block(s) were already done" in res.stderr
    assert not list((run / "parts").glob(".*.tmp"))
    _same_rows(collect_rows(run), reference)
    assert len(pd.read_csv(tmp_path / "all.csv")) == len(reference)


def _scorer_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"_Scorer" in cmd and b"MapWorker" in cmd:
                pids.append(int(entry.name))
    return pids


@pytest.mark.slow  # ~30 s: a local Ray cluster starts
def test_ray_engine_gives_the_same_rows_and_survives_a_killed_worker(inputs, reference, tmp_path):
    pytest.importorskip("ray.data", reason="the Ray engine needs ecgfounder[scale]")
    import ray

    run = tmp_path / "run"
    killed: list[int] = []

    def kill_one_actor() -> None:  # once a few blocks are done, kill -9 a model actor mid-run
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not killed:
            if len(list((run / "parts").glob("part-*.parquet"))) >= 3 and (pids := _scorer_pids()):
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
            time.sleep(0.05)

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        watcher = threading.Thread(target=kill_one_actor, daemon=True)
        watcher.start()
        s = run_archive(MODEL, inputs, run, engine="ray", block_size=2, workers=2, progress=False)
        watcher.join(5)
    finally:
        ray.shutdown()
    assert killed, "no model actor was found to kill"
    assert s.engine == "ray" and s.workers == 2 and s.blocks_scored == 21
    assert not list((run / "parts").glob(".*.tmp"))
    _same_rows(collect_rows(run), reference)
