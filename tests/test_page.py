"""The web page in a real headless Chromium (Debian's package, driven by Playwright): upload a LUDB
record, the clinical plot and the findings appear, the explanation overlay too; a screenshot is
kept in test-artifacts/ for people to look at."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
sync_api = pytest.importorskip("playwright.sync_api")

from conftest import ROOT, serving  # noqa: E402
from ecgfounder import load_model  # noqa: E402
from ecgfounder.serve import ServeSettings  # noqa: E402

CHROMIUM = (
    os.environ.get("ECGFOUNDER_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
)
ARTIFACTS = Path(os.environ.get("ECGFOUNDER_TEST_ARTIFACTS", ROOT / "test-artifacts"))
# Flags from this workplace's notes: no sandbox as root, and no background traffic to the internet.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@pytest.mark.slow
@pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (scripts/setup.sh installs it)"
)
def test_upload_a_ludb_record_and_see_plot_findings_and_explanation(data_dir, tmp_path):
    base = data_dir / "ludb" / "data" / "1"
    settings = ServeSettings(model="cinc2017-rhythm-tiny")
    with serving(settings, load_model("cinc2017-rhythm-tiny")) as (url, _), sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1300, "height": 1400})
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        blocked: list[str] = []  # anything the page's Content-Security-Policy refused
        page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
        page.goto(url + "/")
        page.set_input_files("#file", [str(base.with_suffix(".hea")), str(base.with_suffix(".dat"))])
        page.wait_for_selector("#ecg img", timeout=60_000)
        page.wait_for_selector("#findings tbody tr", timeout=60_000)
        rows = page.locator("#findings tbody tr").all_inner_texts()
        assert len(rows) == 4 and any(label in rows[0] for label in ("normal", "other", "AF", "noisy"))
        width = page.eval_on_selector("#ecg img", "img => img.naturalWidth")
        assert width > 700  # the SVG drawing loaded (274 mm wide)
        page.click("#explain-btn")
        page.wait_for_selector("#explain-img img", timeout=120_000)
        assert "100.0 %" in page.inner_text("#importance")  # one-lead model: all on lead I
        assert page.inner_text("#status").startswith("integrated-gradients for")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "page_ludb1.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert shot.stat().st_size > 50_000
    assert not errors, errors
    assert not blocked, blocked  # the script and style are files: a policy without 'unsafe-inline' holds
    outside = [r for r in requests if not r.startswith((url, "blob:", "data:"))]
    assert not outside, outside  # no CDN, nothing from the network


@pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (scripts/setup.sh installs it)"
)
def test_page_shows_a_clear_error_for_a_bad_file(tmp_path):
    bad = tmp_path / "broken.hea"
    bad.write_bytes(b"not a header")
    with (
        serving(ServeSettings(model="cinc2017-rhythm-tiny"), load_model("cinc2017-rhythm-tiny")) as (url, _),
        sync_api.sync_playwright() as pw,
    ):
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page()
        page.goto(url + "/")
        page.set_input_files("#file", [str(bad)])
        page.wait_for_selector("#status.error", timeout=30_000)
        assert "broken" in page.inner_text("#status") or "header" in page.inner_text("#status").lower()
        browser.close()
