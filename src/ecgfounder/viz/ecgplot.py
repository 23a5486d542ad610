"""The standard clinical ECG rendering, at true physical scale.

Paper: pink grid of 1 mm (minor) and 5 mm (major) squares, 25 mm/s, 10 mm/mV, a 1 mV calibration
pulse (10 mm tall, 0.2 s wide) at the start of every row, lead names at each segment's start,
record id and findings in the header. The figure is laid out in millimetres: one data unit of the
drawing axes is one millimetre of paper, so a PDF or SVG prints at scale and a PNG at ``dpi`` has
``dpi / 25.4`` pixels per millimetre.

Layouts: ``3x4`` (I aVR V1 V4 / II aVL V2 V5 / III aVF V3 V6, 2.5 s per column), ``3x4+rhythm``
(the same with a 10 s lead II strip), ``12x1`` (every lead for 10 s), ``single`` (one lead, one row
per 10 s: several windows of a long record). Optional overlays: attributions (an
:class:`~ecgfounder.explain.Explanation` shaded behind the trace) and fiducials (e.g. LUDB's P, QRS
and T delineation).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ECGFounderError
from ..io.record import ECGRecord

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["LAYOUTS", "PlotGeometry", "plot_ecg", "save_figure", "paper_grid"]

LAYOUTS = ("auto", "3x4", "3x4+rhythm", "12x1", "single")
_GRID_3X4 = (("I", "aVR", "V1", "V4"), ("II", "aVL", "V2", "V5"), ("III", "aVF", "V3", "V6"))
_MINOR, _MAJOR, _PAPER = "#f6c9c9", "#e58f8f", "#fffafa"
_CAL_MM = 10.0  # room for the calibration pulse at the start of each row
_MARGIN = dict(left=8.0, right=6.0, top=20.0, bottom=6.0)
_PT_PER_MM = 72 / 25.4


@dataclass(frozen=True)
class PlotGeometry:
    """Where things are on the paper, in millimetres (returned with the figure, used by tests)."""

    width_mm: float
    height_mm: float
    grid_origin_mm: tuple[float, float]  # bottom-left corner of the grid on the page
    grid_size_mm: tuple[float, float]
    speed_mm_s: float
    gain_mm_mv: float
    rows: int


def _row_plan(
    leads: Sequence[str], layout: str, n_seconds: float, start_s: float, lead: str | None, max_rows: int
) -> list[list[tuple[str, float, float]]]:
    """Rows of segments (lead, t0, t1) in seconds of the record."""
    if layout == "auto":
        layout = (
            "3x4+rhythm"
            if all(x in leads for row in _GRID_3X4 for x in row)
            else ("single" if len(leads) == 1 or lead else "12x1")
        )
    if layout in ("3x4", "3x4+rhythm"):
        missing = [x for row in _GRID_3X4 for x in row if x not in leads]
        if missing:
            raise ECGFounderError(f"layout {layout} needs the 12 standard leads; missing {' '.join(missing)}")
        rows = [
            [(name, start_s + 2.5 * j, start_s + 2.5 * (j + 1)) for j, name in enumerate(row)]
            for row in _GRID_3X4
        ]
        if layout == "3x4+rhythm":
            rows.append([(lead or "II", start_s, start_s + 10.0)])
        return rows
    if layout == "12x1":
        return [[(name, start_s, start_s + 10.0)] for name in leads]
    if layout == "single":
        name = lead or ("II" if "II" in leads else leads[0])
        if name not in leads:
            raise ECGFounderError(f"lead {name} is not in the record (has {' '.join(leads)})")
        n = max(1, min(max_rows, int(np.ceil((n_seconds - start_s) / 10.0 - 1e-9))))
        return [[(name, start_s + 10.0 * i, start_s + 10.0 * (i + 1))] for i in range(n)]
    raise ECGFounderError(f"layout must be one of {', '.join(LAYOUTS)} (got {layout!r})")


def paper_grid(ax: Any, width: float, height: float) -> None:
    """ECG paper on ``ax`` whose data units are millimetres: background, 1 mm and 5 mm squares."""
    from matplotlib.collections import LineCollection
    from matplotlib.patches import Rectangle

    ax.add_patch(Rectangle((0, 0), width, height, facecolor=_PAPER, edgecolor="none", zorder=-1))

    for step, colour, lw in ((1.0, _MINOR, 0.12), (5.0, _MAJOR, 0.35)):
        xs = np.arange(0.0, width + 1e-6, step)
        ys = np.arange(0.0, height + 1e-6, step)
        segs = [((x, 0.0), (x, height)) for x in xs] + [((0.0, y), (width, y)) for y in ys]
        ax.add_collection(LineCollection(segs, colors=colour, linewidths=lw * _PT_PER_MM, zorder=0))


def _calibration(ax: Any, y0: float, gain: float, speed: float) -> None:
    """1 mV for 0.2 s: 10 mm tall and 5 mm wide at the standard settings."""
    w = 0.2 * speed
    x0 = 2.0
    xs = [0.0, x0, x0, x0 + w, x0 + w, _CAL_MM]
    ys = [y0, y0, y0 + gain, y0 + gain, y0, y0]
    ax.plot(xs, ys, color="black", lw=0.18 * _PT_PER_MM, zorder=3, solid_joinstyle="miter")


def plot_ecg(
    ecg: Any,
    *,
    layout: str = "auto",
    lead: str | None = None,
    start_s: float = 0.0,
    findings: str | Sequence[tuple[str, float]] | None = None,
    title: str | None = None,
    speed: float = 25.0,
    gain: float = 10.0,
    row_mm: float | None = None,
    attribution: Any = None,
    fiducials: Mapping[str, Sequence[tuple[float, str]]] | None = None,
    max_rows: int = 6,
    preprocessed: bool = False,
    findings_label: str = "Findings",
    measurements: Any = None,
    duration_s: float | None = None,
) -> tuple[Figure, PlotGeometry]:
    """Draw ``ecg`` (an :class:`ECGRecord`, a file path, or a ``(leads, samples)`` array at 500 Hz
    in mV) on ECG paper. Returns the figure and its :class:`PlotGeometry`.

    ``findings``: a line of text or ``[(label, probability), ...]`` for the header, after
    ``findings_label`` (e.g. ``"Explained"`` for the label an attribution is about). ``attribution``:
    an :class:`~ecgfounder.explain.Explanation` shaded behind the leads it covers. ``fiducials``:
    ``{lead: [(time_s, symbol), ...]}`` (see :func:`~ecgfounder.io.read_ludb_fiducials`).
    ``preprocessed``: draw the signal after the contract's filter chain (band-pass, notch, baseline
    removal; before z-scoring, so still in mV). ``measurements``: a line of text or a
    :class:`~ecgfounder.measurement.Measurements` (``HR 72 bpm  PR 160 ms  QRS 92 ms ...``) at the
    top right, where a printed ECG shows them. ``duration_s``: the whole recording's length when
    ``ecg`` holds only its beginning (the header then says how much of it is shown).
    """
    from matplotlib.figure import Figure

    record = _as_record(ecg)
    if preprocessed:
        record = _filtered(record)
    sig = np.asarray(record.signal, dtype=np.float64)
    fs = float(record.fs)
    if sig.ndim != 2 or sig.shape[1] < 2 or not fs > 0:
        raise ECGFounderError(
            f"{record.source or record.record_id}: nothing to plot (signal {sig.shape}, {fs} Hz)"
        )
    leads = list(record.leads)
    duration = sig.shape[1] / fs
    rows = _row_plan(leads, layout, duration, start_s, lead, max_rows)
    pitch = row_mm or (25.0 if len(rows) > 6 else 37.5)
    row_seconds = max(seg[-1][2] - seg[0][1] for seg in rows)
    grid_w = _CAL_MM + row_seconds * speed
    grid_h = pitch * len(rows)
    grid_w, grid_h = np.ceil(grid_w / 5) * 5, np.ceil(grid_h / 5) * 5  # whole big squares
    width = _MARGIN["left"] + grid_w + _MARGIN["right"]
    height = _MARGIN["bottom"] + grid_h + _MARGIN["top"]
    fig = Figure(figsize=(width / 25.4, height / 25.4))
    fig.patch.set_facecolor("white")
    ax = fig.add_axes((_MARGIN["left"] / width, _MARGIN["bottom"] / height, grid_w / width, grid_h / height))
    ax.set_xlim(0, grid_w)
    ax.set_ylim(0, grid_h)
    ax.set_axis_off()
    paper_grid(ax, grid_w, grid_h)

    for r, segments in enumerate(rows):
        y0 = grid_h - (r + 0.5) * pitch
        _calibration(ax, y0, gain, speed)
        for name, t0, t1 in segments:
            x_base = _CAL_MM + (t0 - segments[0][1]) * speed
            i0, i1 = int(round(t0 * fs)), min(int(round(t1 * fs)), sig.shape[1])
            if i1 - i0 < 2 or name not in leads:
                continue
            trace = sig[leads.index(name), i0:i1]
            xs = x_base + np.arange(i1 - i0) / fs * speed
            if attribution is not None:
                _shade(ax, attribution, name, t0, t1, x_base, speed, y0, pitch)
            ax.plot(
                xs, y0 + trace * gain, color="black", lw=0.2 * _PT_PER_MM, zorder=3, solid_joinstyle="round"
            )
            ax.text(
                x_base + 1.0,
                y0 + 0.3 * pitch,
                name,
                fontsize=8,
                fontweight="bold",
                zorder=4,
                va="bottom",
                ha="left",
            )
            if segments.index((name, t0, t1)) > 0:
                ax.plot([x_base, x_base], [y0 - 2.5, y0 + 2.5], color="black", lw=0.5, zorder=3)
            if fiducials and name in fiducials:
                _fiducials(ax, fiducials[name], t0, t1, x_base, speed, y0, trace, fs, i0, gain)

    head = title or " ".join(x for x in (record.record_id or Path(record.source or "").stem or "ECG",) if x)
    shown0 = min(seg[0][1] for seg in rows if seg)
    shown1 = max(seg[-1][2] for seg in rows if seg)
    total = max(duration, float(duration_s or 0.0))
    span = (
        f"{total:.1f} s"
        if shown0 <= 0 and shown1 >= total - 1e-6
        else f"{shown0:g}-{min(shown1, duration):g} s shown of {total:.1f} s"
    )
    sub = f"{fs:g} Hz, {len(leads)} lead{'s' if len(leads) != 1 else ''}, {span}" + (
        ", filtered" if preprocessed else ""
    )
    fig.text(_MARGIN["left"] / width, 1 - 6 / height, head, fontsize=11, fontweight="bold", va="center")
    fig.text(_MARGIN["left"] / width, 1 - 11.5 / height, sub, fontsize=8, va="center")
    fig.text(
        1 - _MARGIN["right"] / width,
        1 - 6 / height,
        f"{speed:g} mm/s   {gain:g} mm/mV",
        fontsize=8,
        va="center",
        ha="right",
    )
    if findings:
        text = findings if isinstance(findings, str) else "   ".join(f"{k} {v:.2f}" for k, v in findings)
        fig.text(
            _MARGIN["left"] / width,
            1 - 16.5 / height,
            f"{findings_label}: {text}",
            fontsize=8,
            va="center",
            color="#7a0000",
        )
    if measurements is not None:
        line = measurements if isinstance(measurements, str) else measurements.summary_line()
        fig.text(1 - _MARGIN["right"] / width, 1 - 11.5 / height, line, fontsize=8, va="center", ha="right")
    if attribution is not None:
        fig.text(
            1 - _MARGIN["right"] / width,
            1 - (16.5 if measurements is not None else 11.5) / height,
            f"shading: {attribution.method} for {attribution.label}",
            fontsize=7,
            va="center",
            ha="right",
        )
    geo = PlotGeometry(
        width,
        height,
        (_MARGIN["left"], _MARGIN["bottom"]),
        (float(grid_w), float(grid_h)),
        speed,
        gain,
        len(rows),
    )
    return fig, geo


def _as_record(ecg: Any) -> ECGRecord:
    if isinstance(ecg, ECGRecord):
        return ecg
    if isinstance(ecg, (str, os.PathLike)):
        from ..io import read_ecg

        return read_ecg(ecg)
    arr = np.asarray(ecg, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None]
    leads = (
        ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
        if len(arr) == 12
        else tuple(f"ch{i + 1}" for i in range(len(arr)))
    )
    return ECGRecord(signal=arr, fs=500.0, leads=leads, record_id="array")


def _filtered(record: ECGRecord) -> ECGRecord:
    from ..signal import filter_chain

    sig = filter_chain(np.nan_to_num(record.signal.astype(np.float64)), fs=record.fs)
    return ECGRecord(
        signal=np.asarray(sig, np.float32),
        fs=record.fs,
        leads=record.leads,
        record_id=record.record_id,
        source=record.source,
    )


def _shade(
    ax: Any, expl: Any, name: str, t0: float, t1: float, x_base: float, speed: float, y0: float, pitch: float
) -> None:
    """Attribution behind the trace: red where it raises the score, blue where it lowers it.

    Shown smoothed over 40 ms (attributions of single samples are spiky) and scaled to the 99th
    percentile of the explanation's magnitude, so that one sample does not wash out the rest.
    """
    if name not in expl.leads:
        return
    from scipy.ndimage import uniform_filter1d

    width = max(1, int(round(0.04 * expl.fs)))
    smooth = uniform_filter1d(np.asarray(expl.values, dtype=np.float64), width, axis=-1, mode="nearest")
    values = smooth[expl.leads.index(name)]
    times = expl.start_s + np.arange(values.size) / expl.fs
    keep = (times >= t0) & (times < t1)
    if not keep.any():
        return
    scale = float(np.percentile(np.abs(smooth), 99)) or float(np.abs(smooth).max()) or 1.0
    seg = np.clip(values[keep] / scale, -1, 1)
    xa, xb = x_base + (times[keep][0] - t0) * speed, x_base + (times[keep][-1] - t0) * speed
    ax.imshow(
        seg[None, :],
        extent=(xa, xb, y0 - 0.45 * pitch, y0 + 0.45 * pitch),
        cmap="bwr",
        vmin=-1,
        vmax=1,
        alpha=0.45,
        aspect="auto",
        interpolation="nearest",
        zorder=1,
    )


_FIDUCIAL_COLOURS = {"p": "#1f77b4", "N": "#d62728", "t": "#2ca02c"}


def _fiducials(
    ax: Any,
    marks: Sequence[tuple[float, str]],
    t0: float,
    t1: float,
    x_base: float,
    speed: float,
    y0: float,
    trace: np.ndarray,
    fs: float,
    i0: int,
    gain: float,
) -> None:
    for time_s, symbol in marks:
        if not t0 <= time_s < t1:
            continue
        x = x_base + (time_s - t0) * speed
        k = min(max(int(round(time_s * fs)) - i0, 0), trace.size - 1)
        y = y0 + trace[k] * gain
        if symbol in ("(", ")"):
            ax.plot([x, x], [y - 1.5, y + 1.5], color="#555555", lw=0.4, zorder=4)
        else:
            ax.plot([x], [y], marker="o", ms=2.2, color=_FIDUCIAL_COLOURS.get(symbol, "#9467bd"), zorder=5)
            ax.text(
                x,
                y + 2.0,
                {"N": "QRS"}.get(symbol, symbol.upper()),
                fontsize=5,
                ha="center",
                color=_FIDUCIAL_COLOURS.get(symbol, "#9467bd"),
                zorder=5,
            )


def save_figure(fig: Figure, path: str | os.PathLike[str], *, dpi: int = 200) -> Path:
    """Write PNG, PDF or SVG (by suffix) at the figure's physical size."""
    path = Path(path)
    if path.suffix.lower() not in (".png", ".pdf", ".svg"):
        raise ECGFounderError(f"{path}: plot output must be .png, .pdf or .svg")
    path.parent.mkdir(parents=True, exist_ok=True)
    import matplotlib

    # No bbox_inches: keep the physical size. SVG text stays text (searchable, accessible).
    with matplotlib.rc_context({"svg.fonttype": "none", "pdf.fonttype": 42}):
        fig.savefig(path, dpi=dpi, facecolor="white")
    return path
