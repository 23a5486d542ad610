"""The first hour of a new user and archive-sized runs: default model by input, empty inputs, outputs
never overwritten silently nor half-written, kill-and-resume, shards, exit statuses, closed pipes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from conftest import run_cli
from ecgfounder import Predictor, create_model
from ecgfounder.infer.runs import NoInputsError, OutputExistsError, predict_to_file, shard_of

CLI = [sys.executable, "-m", "ecgfounder"]
PROB_COLUMNS = ["normal", "AF", "other", "noisy"]


def cli(*args: object, env: dict | None = None, timeout: int = 180) -> Any:
    """The command in this process (:func:`conftest.run_cli`); in a subprocess where it needs its
    own environment."""
    if env is None:
        return run_cli(*args)
    return subprocess.run(
        [*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout, env={**os.environ, **env}
    )


@pytest.fixture(scope="module")
def cinc_folder(tmp_path_factory, data_dir) -> Path:
    """60 CinC 2017 records (hea + mat) in a folder of their own."""
    folder = tmp_path_factory.mktemp("cinc")
    names = (data_dir / "cinc2017-dev" / "RECORDS").read_text().split()[:60]
    for n in names:
        for ext in (".hea", ".mat"):
            shutil.copy(data_dir / "cinc2017-dev" / f"{n}{ext}", folder / f"{n}{ext}")
    return folder


def _table(path: Path) -> pd.DataFrame:
    return pd.read_csv(path).sort_values("record").reset_index(drop=True)


def test_no_inputs_is_exit_2_naming_what_was_searched_and_writes_nothing(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "x.csv"
    r = cli("predict", empty, "--model", "cinc2017-rhythm-tiny", "-o", out)
    assert r.returncode == 2 and "no ECG inputs found in" in r.stderr and str(empty) in r.stderr
    assert "wrote" not in r.stderr and not out.exists() and not (tmp_path / "x.csv.partial").exists()
    r = cli("predict", str(tmp_path / "*.hea"), "--model", "cinc2017-rhythm-tiny")
    assert r.returncode == 2 and "no ECG inputs found" in r.stderr and "Traceback" not in r.stderr
    with pytest.raises(NoInputsError):
        predict_to_file(Predictor("cinc2017-rhythm-tiny", workers=0, progress=False), [empty], out)


@pytest.mark.slow
def test_existing_output_is_refused_unless_overwrite(tmp_path, cinc_folder):
    out = tmp_path / "pred.csv"
    out.write_text("another run's results\n")
    one = str(cinc_folder / "A00001.hea")
    r = cli("predict", one, "--model", "cinc2017-rhythm-tiny", "-o", out)
    assert r.returncode == 2 and "exists" in r.stderr and "--overwrite" in r.stderr
    assert out.read_text() == "another run's results\n"
    r = cli("predict", one, "--model", "cinc2017-rhythm-tiny", "-o", out, "--overwrite")
    assert r.returncode == 0 and len(pd.read_csv(out)) == 1
    with pytest.raises(OutputExistsError):
        predict_to_file(Predictor("cinc2017-rhythm-tiny", workers=0, progress=False), [one], out)


@pytest.mark.slow
def test_kill_and_resume_gives_the_uninterrupted_rows(tmp_path, cinc_folder):
    whole = tmp_path / "whole.csv"
    assert (
        cli(
            "predict", cinc_folder, "--model", "cinc2017-rhythm-tiny", "-o", whole, "--workers", "0"
        ).returncode
        == 0
    )
    out = tmp_path / "resumed.csv"
    partial = tmp_path / "resumed.csv.partial"
    proc = subprocess.Popen(
        [
            *CLI,
            "predict",
            str(cinc_folder),
            "--model",
            "cinc2017-rhythm-tiny",
            "-o",
            str(out),
            "--workers",
            "0",
            "--per-window",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if partial.exists() and partial.read_bytes().count(b"\n") > 40:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert partial.exists() and not out.exists(), "an interrupted run leaves no file under the final name"
    lines_before = partial.read_bytes().count(b"\n")
    r = cli(
        "predict",
        cinc_folder,
        "--model",
        "cinc2017-rhythm-tiny",
        "-o",
        out,
        "--workers",
        "0",
        "--per-window",
        "--resume",
    )
    assert r.returncode == 0, r.stderr
    assert "kept from the interrupted run" in r.stderr and not partial.exists()
    got = pd.read_csv(out)
    per_window = cli(
        "predict",
        cinc_folder,
        "--model",
        "cinc2017-rhythm-tiny",
        "-o",
        tmp_path / "pw.csv",
        "--workers",
        "0",
        "--per-window",
    )
    assert per_window.returncode == 0
    want = pd.read_csv(tmp_path / "pw.csv")
    assert lines_before > 40 and len(got) == len(want)  # none lost, none duplicated
    assert not got.duplicated(["record", "window"]).any()
    key = ["record", "window"]
    got, want = got.sort_values(key).reset_index(drop=True), want.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(got[key], want[key])
    pd.testing.assert_frame_equal(got[PROB_COLUMNS], want[PROB_COLUMNS], atol=1e-6, rtol=0)
    assert set(pd.read_csv(whole)["record"]) == set(got["record"])


@pytest.mark.slow
def test_shards_are_disjoint_and_concatenate_to_the_whole(tmp_path, cinc_folder):
    # the whole and the three shards in this process (one model load); the CLI's --shard and
    # torchrun's environment each once, against the same shard
    pred = Predictor("cinc2017-rhythm-tiny", workers=0, progress=False)
    whole = tmp_path / "whole.csv"
    predict_to_file(pred, [cinc_folder], whole)
    parts = []
    for k in (1, 2, 3):
        predict_to_file(pred, [cinc_folder], tmp_path / "pred.csv", shard=(k, 3))
        parts.append(pd.read_csv(tmp_path / f"pred.part{k}of3.csv"))
    assert all(len(p) == 20 for p in parts)
    assert not set(parts[0]["record"]) & set(parts[1]["record"])
    joined = pd.concat(parts, ignore_index=True)
    want = pd.read_csv(whole)
    pd.testing.assert_frame_equal(joined[["record"]], want[["record"]])  # in order, too
    pd.testing.assert_frame_equal(joined[PROB_COLUMNS], want[PROB_COLUMNS], atol=1e-6, rtol=0)
    r = cli(
        "predict",
        cinc_folder,
        "--model",
        "cinc2017-rhythm-tiny",
        "-o",
        tmp_path / "c.csv",
        "--workers",
        "0",
        "--shard",
        "2/3",
    )
    assert r.returncode == 0, r.stderr
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "c.part2of3.csv"), parts[1])
    # torchrun sets RANK / WORLD_SIZE: the shard follows without --shard
    r = cli(
        "predict",
        cinc_folder,
        "--model",
        "cinc2017-rhythm-tiny",
        "-o",
        tmp_path / "t.csv",
        "--workers",
        "0",
        env={"RANK": "1", "WORLD_SIZE": "3"},
    )
    assert r.returncode == 0, r.stderr
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "t.part2of3.csv"), parts[1])
    assert shard_of(list(range(10)), 3, 3) == [6, 7, 8, 9] and shard_of(list(range(2)), 1, 3) == []
    assert cli("predict", cinc_folder, "-o", tmp_path / "x.csv", "--shard", "4/3").returncode == 2


@pytest.mark.slow
def test_default_model_follows_the_input(tmp_path, cinc_folder):
    torch.manual_seed(0)
    weights = tmp_path / "weights"
    weights.mkdir()
    torch.save(
        {"state_dict": create_model("ecgfounder-1lead").state_dict()}, weights / "1_lead_ECGFounder.pth"
    )
    r = cli("predict", cinc_folder / "A00001.hea", env={"ECGFOUNDER_WEIGHTS_DIR": str(weights)})
    assert r.returncode == 0, r.stderr
    assert "model: ecgfounder-1lead (A00001.hea has 1 lead, not 12" in r.stderr
    assert r.stdout.count("\n") == 2 and "ecgfounder-1lead" in r.stdout
    t = time.monotonic()
    r = cli(
        "predict",
        cinc_folder / "A00001.hea",
        env={"ECGFOUNDER_WEIGHTS_DIR": str(tmp_path / "none"), "HF_HUB_OFFLINE": "1"},
    )
    assert r.returncode == 2 and time.monotonic() - t < 30
    assert "hf download PKUDigitalHealth/ECGFounder 1_lead_ECGFounder.pth" in r.stderr
    assert "--model cinc2017-rhythm-tiny" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow  # 7-10 s on a 2-core AVX2 EPYC
def test_exit_statuses_and_a_closed_pipe(tmp_path, cinc_folder):
    bad = tmp_path / "bad.hea"
    bad.write_text("garbage\n")
    r = cli("predict", cinc_folder / "A00001.hea", bad, "--model", "cinc2017-rhythm-tiny")
    assert r.returncode == 1 and "bad.hea" in r.stderr  # some inputs failed
    assert cli("predict", "--model").returncode == 2  # usage
    shell = subprocess.run(
        f"{' '.join(CLI)} labels | head -1", shell=True, capture_output=True, text=True, timeout=60
    )
    assert "Traceback" not in shell.stderr and "BrokenPipe" not in shell.stderr
    assert shell.stdout.startswith("0\t")


def test_resume_from_another_place_scores_no_record_twice(tmp_path, cinc_folder):
    """Issue 31: a run interrupted when started from one place and resumed from another (the inputs
    named through a symlink here) keeps what was written and appends only the rest."""
    pred = Predictor("cinc2017-rhythm-tiny", workers=0, progress=False)
    names = sorted(p.name for p in cinc_folder.glob("*.hea"))[:8]
    first = tmp_path / "first.csv"
    predict_to_file(pred, [cinc_folder / n for n in names[:5]], first)
    out = tmp_path / "out.csv"
    shutil.copy(first, tmp_path / "out.csv.partial")  # as an interruption after 5 records leaves it
    link = tmp_path / "link"
    link.symlink_to(cinc_folder, target_is_directory=True)
    summary = predict_to_file(pred, [link / n for n in names], out, resume=True)
    assert summary.resumed == 4 and summary.records == 4  # the last kept record is scored again
    got = pd.read_csv(out)
    assert len(got) == 8 and [Path(r).name for r in got["record"]] == names


def test_a_cut_write_is_removed_once_its_block_is_committed_and_not_before(tmp_path):
    """A worker killed while writing leaves ``.part-N.parquet.<id>.tmp``; at the end of a run only
    the leftovers of committed blocks go (another shard's driver may be writing the others)."""
    from ecgfounder.infer.blocks import RunStore

    store = RunStore(tmp_path)
    store.write("parts/part-000003.parquet", b"committed")
    cut = tmp_path / "parts" / ".part-000003.parquet.0123abcd.tmp"
    live = tmp_path / "parts" / ".part-000004.parquet.4567cdef.tmp"
    cut.write_bytes(b"half")
    live.write_bytes(b"being written")
    store.clean(committed_only=True)
    assert not cut.exists() and live.exists()
    assert sorted(p.name for p in (tmp_path / "parts").iterdir()) == [live.name, "part-000003.parquet"]
    assert store.parts_done() == {3}
    store.clean()  # on resuming a run: every leftover
    assert not live.exists()
