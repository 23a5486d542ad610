"""``report.pdf`` of a monitored recording: a first page a cardiologist reads at a glance (timeline
of the labels' probabilities with their episodes, heart rate, burden table, longest episodes),
then the onset of each of the longest episodes on ECG paper (25 mm/s, 10 mm/mV, from :mod:`viz`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["write_report"]


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def write_report(
    result: Any,
    long: Any,
    path: str | os.PathLike[str],
    *,
    lead: str | None = None,
    strips: int = 3,
    first_page_png: str | os.PathLike[str] | None = None,
) -> Path:
    """Write the report of ``result`` (a :class:`~ecgfounder.monitor.MonitorResult`) read from
    ``long`` (the :class:`~ecgfounder.io.chunks.LongRecording`) to ``path``; ``first_page_png``
    also saves the first page as a picture."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.figure import Figure

    from ..viz import plot_ecg

    s = result.summary
    table = result.windows
    labels = list(s["burden"])
    hours = s["duration_s"] >= 3 * 3600
    scale, unit = (3600.0, "h") if hours else (60.0, "min")
    centre = (table["start_s"] + (table["end_s"] - table["start_s"]) / 2) / scale
    path = Path(path)
    with PdfPages(path) as pdf:
        fig = Figure(figsize=(11.69, 8.27))  # A4 landscape
        fig.text(
            0.05,
            0.95,
            f"{Path(str(s['record'])).name}: {_clock(s['duration_s'])} recorded, "
            f"{_clock(s['analysed_s'])} analysed, {_clock(s['excluded_s'])} excluded",
            fontsize=13,
            fontweight="bold",
        )
        fig.text(
            0.05,
            0.915,
            f"model {s['model']}; windows of {s['windows']['window_s']:g} s every "
            f"{s['windows']['stride_s']:g} s; episodes: on {s['rules']['on']}, off {s['rules']['off']}, "
            f"at least {s['rules']['min_duration_s']:g} s. Not a diagnosis: for review by a clinician.",
            fontsize=8,
            color="#444444",
        )
        ax = fig.add_axes((0.07, 0.55, 0.88, 0.31))
        for i, label in enumerate(labels):
            colour = f"C{i}"
            ax.plot(centre, table[label], lw=0.8, color=colour, label=label)
            for e in result.episodes:
                if e.label == label:
                    ax.axvspan(e.start_s / scale, e.end_s / scale, color=colour, alpha=0.15, lw=0)
        excluded = table["quality"] != "ok"
        ax.scatter(
            centre[excluded],
            np.full(int(excluded.sum()), -0.05),
            marker="|",
            color="grey",
            s=30,
            label="excluded",
        )
        ax.set_ylim(-0.1, 1.05)
        ax.set_ylabel("probability")
        ax.legend(loc="upper right", fontsize=7, ncol=min(4, len(labels) + 1))
        ax.set_title("labels over the recording (shaded: episodes)", fontsize=9, loc="left")
        hr = fig.add_axes((0.07, 0.33, 0.88, 0.16), sharex=ax)
        hr.plot(centre, table["hr_bpm"], ".", ms=2, color="black")
        hr.set_ylabel("heart rate (bpm)")
        hr.set_xlabel(f"time ({unit})")
        rate = s["heart_rate"]
        expected = s.get("burden_expected", {})
        rows = [
            f"{label}: burden {100 * s['burden'][label]:.1f}% of analysed time in {s['episodes'][label]} "
            f"episode(s)"
            + (
                f"; {100 * expected[label]:.1f}% expected from the window probabilities"
                if label in expected
                else ""
            )
            for label in labels
        ]
        if rate.get("mean_bpm") is not None:
            rows.append(
                f"heart rate: mean {rate['mean_bpm']} bpm, per-minute min {rate['min_bpm']}, max "
                f"{rate['max_bpm']}"
            )
        for reason, seconds in s["excluded_by_reason"].items():
            rows.append(f"excluded, {reason}: {_clock(seconds)}")
        fig.text(0.05, 0.25, "\n".join(rows), fontsize=9, va="top", family="monospace")
        longest = sorted(result.episodes, key=lambda e: -e.duration_s)[:strips]
        lines = [
            f"{e.label:<12} {_clock(e.start_s)} - {_clock(e.end_s)}  ({_clock(e.duration_s)}), mean p "
            f"{e.mean_probability:.2f}"
            for e in longest
        ]
        fig.text(
            0.55,
            0.25,
            "longest episodes\n" + ("\n".join(lines) or "none"),
            fontsize=9,
            va="top",
            family="monospace",
        )
        pdf.savefig(fig)
        if first_page_png is not None:
            fig.savefig(first_page_png, dpi=110)
        for e in longest:
            start = max(0.0, e.start_s - 2.0)
            a, b = int(start * long.fs), int(min(long.duration_s, start + 10.0) * long.fs)
            try:
                record = long.read(a, b)
            except Exception:  # noqa: BLE001 - a damaged span: the strip is left out
                continue
            strip, _ = plot_ecg(
                record,
                layout="single",
                lead=lead if lead in record.leads else None,
                max_rows=1,
                title=f"{e.label} episode onset at {_clock(e.start_s)} (strip from {_clock(start)})",
                findings=f"{e.label} mean probability {e.mean_probability:.2f} over {_clock(e.duration_s)}",
                findings_label="Episode",
            )
            pdf.savefig(strip)
    return path
