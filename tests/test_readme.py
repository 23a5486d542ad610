"""The README's quick start runs as written on a fresh clone: its two offline commands, and every
Python block in order (one namespace), with the released weights' files stood in for by
random-weight files of the official format in $ECGFOUNDER_WEIGHTS_DIR (no network in tests)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.slow  # ~7 s: the quick start commands in fresh interpreters
def test_quick_start_commands(tmp_path):
    block = re.search(r"## Quick start.*?```bash\n(.*?)```", README, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]
    assert commands[0].startswith("ecgfounder read") and commands[1].startswith("ecgfounder predict")
    for command in commands:
        args = command.split()[1:]
        r = subprocess.run(
            [sys.executable, "-m", "ecgfounder", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        assert r.returncode == 0, (command, r.stderr)
        assert r.stdout.strip(), command
    assert "A00001" in r.stdout and "normal" in r.stdout


@pytest.mark.slow
def test_python_blocks_run_in_order(tmp_path):
    from ecgfounder import create_model

    weights = tmp_path / "weights"
    weights.mkdir()
    torch.manual_seed(0)
    for name, file in (
        ("ecgfounder-12lead", "12_lead_ECGFounder.pth"),
        ("ecgfounder-1lead", "1_lead_ECGFounder.pth"),
    ):
        torch.save({"state_dict": create_model(name).state_dict()}, weights / file)
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert len(blocks) >= 3
    work = tmp_path / "work"
    work.mkdir()
    (work / "examples").symlink_to(ROOT / "examples")
    script = work / "readme_blocks.py"
    script.write_text("\n".join(f"# --- block {i}\n{b}" for i, b in enumerate(blocks)))
    env = {**os.environ, "ECGFOUNDER_WEIGHTS_DIR": str(weights), "HF_HUB_OFFLINE": "1"}
    r = subprocess.run(
        [sys.executable, str(script)], cwd=work, capture_output=True, text=True, timeout=300, env=env
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert (work / "af-1lead.safetensors").is_file()  # the fine-tuning block saved its model
