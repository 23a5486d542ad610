"""scripts/setup.sh says why an optional step failed (issue 31: chromium's install error went to
/dev/null, and a dpkg lock looked like a missing package)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# What apt-get and sudo print in each case (copied from their messages).
APT_OUTPUTS = {
    "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (apt-get)\n"
    "E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using "
    "it?\n": "locked by another process",
    "sudo: a password is required\n": "needs root",
    "E: Could not open lock file /var/lib/dpkg/lock-frontend - open (13: Permission denied)\n"
    "E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), "
    "are you root?\n": "needs root",
    "Reading package lists...\nE: Unable to locate package chromium\n": "no chromium package",
    "Err:1 http://deb.example/debian bookworm InRelease\n"
    "  Temporary failure resolving 'deb.example'\n": "cannot be reached",
    "E: Sub-process /usr/bin/dpkg returned an error code (1)\n": "apt-get said: E: Sub-process /usr/bin/dpkg",
}


def _why(kind: str, log: Path) -> str:
    r = subprocess.run(
        ["bash", "-c", f'. scripts/setup_reasons.sh && {kind} "$1"', "_", str(log)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


@pytest.mark.parametrize(
    "output", list(APT_OUTPUTS), ids=["lock", "sudo", "not-root", "missing", "network", "other"]
)
def test_each_apt_failure_gets_its_cause(tmp_path, output):
    log = tmp_path / "apt.log"
    log.write_text(output)
    assert APT_OUTPUTS[output] in _why("why_apt", log)


@pytest.mark.skipif(shutil.which("apt-get") is None, reason="no apt-get on this machine")
def test_a_real_apt_failure_is_named(tmp_path):
    """A real apt-get run (a simulated install of a package no source has): the cause, not silence."""
    log = tmp_path / "apt.log"
    with open(log, "w") as fh:
        subprocess.run(
            ["apt-get", "install", "-s", "-q", "no-such-package-ecgfounder"],
            stdout=fh,
            stderr=subprocess.STDOUT,
            timeout=60,
        )
    assert _why("why_apt", log) == "no chromium package in the configured Debian/Ubuntu sources"


def test_the_setup_script_reports_instead_of_discarding():
    text = (ROOT / "scripts" / "setup.sh").read_text()
    assert (
        "/dev/null 2>&1 ||" not in text and "2>/dev/null ||" not in text
    )  # no failure discarded unexplained
    assert "why_apt" in text and "why_pip" in text
    r = subprocess.run(["bash", "-n", "scripts/setup.sh"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
