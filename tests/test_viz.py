"""Clinical ECG plots: physical scale (PNG pixels, PDF/SVG page size), layouts, overlays, CLI."""

from __future__ import annotations

import re

import numpy as np
import pytest

from ecgfounder import ECGFounderError, read_ecg
from ecgfounder.cli.main import main
from ecgfounder.io import read_ludb_fiducials
from ecgfounder.viz import plot_ecg, save_figure

matplotlib = pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def ludb1(data_dir):
    return data_dir / "ludb" / "data" / "1.hea"


def _dark_runs(column: np.ndarray) -> list[int]:
    """Lengths of runs of dark pixels down one image column."""
    dark = column < 0.35
    runs, n = [], 0
    for d in dark:
        if d:
            n += 1
        elif n:
            runs.append(n)
            n = 0
    return runs + ([n] if n else [])


def test_png_has_the_stated_physical_scale_and_a_10_mm_calibration_pulse(ludb1, tmp_path):
    fig, geo = plot_ecg(ludb1, layout="3x4+rhythm", findings=[("sinus rhythm", 0.9)])
    assert geo.rows == 4 and geo.speed_mm_s == 25 and geo.gain_mm_mv == 10
    assert geo.grid_size_mm[0] == 260  # 10 mm calibration room + 10 s at 25 mm/s
    out = save_figure(fig, tmp_path / "ecg.png", dpi=254)  # 10 pixels per mm
    img = matplotlib.image.imread(out)
    assert img.shape[:2] == (round(geo.height_mm * 10), round(geo.width_mm * 10))
    grey = img[..., :3].mean(-1)
    # the calibration pulse's rising edge: 2 mm after the grid's left edge, in every row
    x = round((geo.grid_origin_mm[0] + 2.0) * 10)
    runs = [r for r in _dark_runs(grey[:, x]) if r > 50]
    assert len(runs) == geo.rows
    for r in runs:
        assert abs(r - 100) <= 3, runs  # 1 mV at 10 mm/mV = 10 mm = 100 px
    # the grid: pink-ish pixels dominate the paper, the trace is black
    assert (grey < 0.35).mean() < 0.05
    red = img[..., 0] - img[..., 1]
    assert (red > 0.1).mean() > 0.05


def test_pdf_and_svg_pages_are_at_true_size_with_text(ludb1, tmp_path):
    fig, geo = plot_ecg(ludb1, layout="12x1", findings="left ventricular hypertrophy 0.71")
    pdf = save_figure(fig, tmp_path / "ecg.pdf")
    box = re.search(rb"/MediaBox \[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", pdf.read_bytes())
    assert box is not None
    assert float(box.group(1)) == pytest.approx(geo.width_mm / 25.4 * 72, abs=0.1)
    assert float(box.group(2)) == pytest.approx(geo.height_mm / 25.4 * 72, abs=0.1)
    assert geo.rows == 12
    svg = save_figure(fig, tmp_path / "ecg.svg").read_text()
    width = float(re.search(r'width="([\d.]+)pt"', svg).group(1))
    assert width == pytest.approx(geo.width_mm / 25.4 * 72, abs=0.1)
    for text in ("25 mm/s", "10 mm/mV", "left ventricular hypertrophy 0.71", "V6", "aVR"):
        assert text in svg


def test_long_single_lead_record_gets_one_row_per_10_s(data_dir):
    rec = read_ecg(data_dir / "cinc2017-dev" / "A00001.hea")  # 30 s, one lead
    fig, geo = plot_ecg(rec)
    assert geo.rows == 3
    _, geo2 = plot_ecg(rec, max_rows=2, start_s=5.0)
    assert geo2.rows == 2


def test_layout_errors_name_the_problem(data_dir):
    rec = read_ecg(data_dir / "cinc2017-dev" / "A00001.hea")
    with pytest.raises(ECGFounderError, match="missing"):
        plot_ecg(rec, layout="3x4")
    with pytest.raises(ECGFounderError, match="layout must be"):
        plot_ecg(rec, layout="6x2")
    with pytest.raises(ECGFounderError, match="plot output"):
        save_figure(plot_ecg(rec)[0], "x.jpg")


def test_ludb_fiducials_overlay(ludb1):
    marks = read_ludb_fiducials(ludb1)
    assert set(marks) == {"I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"}
    symbols = {s for _, s in marks["II"]}
    assert {"p", "N", "t", "(", ")"} <= symbols
    plain, _ = plot_ecg(ludb1, layout="12x1")
    marked, _ = plot_ecg(ludb1, layout="12x1", fiducials=marks)
    n_plain, n_marked = len(plain.axes[0].lines), len(marked.axes[0].lines)
    assert n_marked - n_plain == sum(len(v) for v in marks.values())  # one artist per mark
    texts = [t.get_text() for t in marked.axes[0].texts]
    assert texts.count("QRS") == sum(s == "N" for v in marks.values() for _, s in v)


def test_preprocessed_signal_is_filtered_but_in_mv(ludb1):
    rec = read_ecg(ludb1)
    fig, _ = plot_ecg(rec, layout="12x1", preprocessed=True)
    y = fig.axes[0].lines[1].get_ydata()  # first trace after the calibration pulse
    raw = plot_ecg(rec, layout="12x1")[0].axes[0].lines[1].get_ydata()
    assert not np.allclose(y, raw)
    assert 0.2 < np.ptp(y) / np.ptp(raw) < 2.0  # same units (mV), not z-scored


def test_cli_plot_writes_the_figure(ludb1, tmp_path, capsys):
    out = tmp_path / "ludb1.svg"
    assert (
        main(
            [
                "plot",
                str(ludb1),
                "--output",
                str(out),
                "--fiducials",
                "--model",
                "cinc2017-rhythm-tiny",
                "--lead",
                "II",
            ]
        )
        == 0
    )
    assert "274 x 176 mm" in capsys.readouterr().out
    assert "Findings:" in out.read_text()
    assert main(["plot", str(tmp_path / "missing.hea")]) == 2


def test_header_says_what_is_drawn_and_what_an_explanation_is_about(data_dir):
    rec = read_ecg(data_dir / "cinc2017-dev" / "A00001.hea")  # 30 s
    fig, _ = plot_ecg(rec, layout="single", max_rows=1, findings="AF logit -2.10", findings_label="Explained")
    texts = [t.get_text() for t in fig.texts]
    assert any("0-10 s shown of 30.0 s" in t for t in texts), texts
    assert any(t.startswith("Explained: AF") for t in texts) and not any(
        t.startswith("Findings") for t in texts
    )
    whole, _ = plot_ecg(rec, layout="single", max_rows=3)
    assert any(t.endswith("30.0 s") and "shown" not in t for t in (x.get_text() for x in whole.texts))
