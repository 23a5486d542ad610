"""The command line, run as a user runs it: a separate process."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from conftest import CliResult, run_cli, small_checkpoint

EXE = Path(sys.executable).with_name("ecgfounder")


def run(*args: str) -> CliResult:
    return run_cli(*args)


def test_help_and_version():
    out = run("--help")
    assert out.returncode == 0 and "usage: ecgfounder" in out.stdout
    for command in ("models", "info", "labels", "convert"):
        assert command in out.stdout
    out = run("--version")
    assert out.returncode == 0 and out.stdout.startswith("ecgfounder ")


def test_models_and_labels(fixtures_dir):
    out = run("models", "--json")
    names = [m["name"] for m in json.loads(out.stdout)["models"]]
    assert {"ecgfounder-12lead", "ecgfounder-1lead"} <= set(names)
    out = run("labels", "ecgfounder-1lead")
    lines = out.stdout.splitlines()
    expected = (fixtures_dir / "ecgfounder_labels.txt").read_text().splitlines()
    assert [line.split("\t", 1)[1] for line in lines] == expected
    assert lines[5] == "5\tATRIAL FIBRILLATION"


@pytest.mark.slow
def test_info_and_convert(fixtures_dir, tmp_path):
    src = small_checkpoint(fixtures_dir, 1, 1)
    out = run("info", str(src), "--use-bn", "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["config"]["use_bn"] is True and info["config"]["in_channels"] == 1
    dst = tmp_path / "small.safetensors"
    out = run("convert", str(src), str(dst), "--use-bn", "--name", "small-1lead")
    assert out.returncode == 0, out.stderr
    info = json.loads(run("info", str(dst), "--json").stdout)
    assert info["name"] == "small-1lead" and info["config"]["use_bn"] is True


def test_bad_file_gives_one_line_error_not_traceback(tmp_path):
    bad = tmp_path / "broken.pth"
    bad.write_bytes(b"\x00" * 100)
    out = run("info", str(bad))
    assert out.returncode == 2
    assert out.stderr.startswith(f"error: {bad}: ") and "Traceback" not in out.stderr


def test_read_reports_records_and_bad_files(data_dir, tmp_path):
    bad = tmp_path / "bad.edf"
    bad.write_bytes(b"0       garbage")
    out = run(
        "read",
        str(data_dir / "ludb" / "data" / "1.hea"),
        str(bad),
        str(data_dir / "wfdb-samples" / "v102s.hea"),
        "--json",
    )
    assert out.returncode == 1
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert rows[0]["leads"][:3] == ["I", "II", "III"] and rows[0]["age"] == 51
    assert rows[1]["record"] == str(bad) and "error" in rows[1]
    assert rows[2]["leads"] == ["II", "V"] and any("PLETH" in n for n in rows[2]["notes"])
    assert f"error: {bad}: " in out.stderr and "Traceback" not in out.stderr


def test_readme_example_files_read():
    root = Path(__file__).resolve().parents[1] / "examples" / "ecg"
    out = run("read", str(root / "1.hea"), str(root / "A00001.hea"), "--json")
    assert out.returncode == 0, out.stderr
    a, b = (json.loads(line) for line in out.stdout.splitlines())
    assert len(a["leads"]) == 12 and a["fs"] == 500 and a["age"] == 51
    assert b["leads"] == ["ECG"] and b["fs"] == 300 and b["duration_s"] == 30
