"""``report.pdf`` of a monitored recording: a Holter report on A4 or US Letter pages.

Page 1: the patient (age, sex: never a name), the recording's start and length, analysed and
excluded time with reasons, the Holter summary (beats, heart rate with clock times, pauses,
bradycardia/tachycardia, supraventricular and ventricular ectopy, HRV, rhythm episodes and burden
in clinical words), the heart-rate trend and the labels' probabilities over the recording.
Then the events on ECG paper (25 mm/s, 10 mm/mV, 1 mm and 5 mm grid), three strips of 10 s a
page: the longest pause, the slowest and fastest heart rate, the first AF onset, the longest V and
S runs (or the first V and S beats), the onset of the longest episodes of the other labels. Each
strip names its event, clock time and the lead drawn; lead names and beat marks sit above the
grid, clear of the trace. Every page: its number of the total and "not a diagnosis".
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .holter import clock_time

__all__ = ["write_report", "report_events", "strip_page", "describe_label", "PAPERS", "StripEvent"]

PAPERS = {"a4": (297.0, 210.0), "letter": (279.4, 215.9)}  # landscape, mm
_MM = 1 / 25.4
_SPEED, _GAIN = 25.0, 10.0
_STRIP_S = 10.0
_CAL_MM = 10.0
_GRID_H = 40.0  # mm: 4 mV
_STRIPS_PER_PAGE = 3

_WORDS = {
    "af": "atrial fibrillation (AF)",
    "normal": "normal sinus rhythm",
    "other": "other rhythm",
    "noisy": "too noisy to classify",
}
_EXPLAINED = {
    "other": "other rhythm: abnormal, neither normal sinus rhythm nor AF (e.g. ectopy, flutter, block)",
}


def describe_label(label: str, *, explained: bool = False) -> str:
    """A model label in clinical words (``other`` is never left bare); ``explained``: with what it
    means where a name alone does not say."""
    if explained and label.lower() in _EXPLAINED:
        return _EXPLAINED[label.lower()]
    return _WORDS.get(label.lower(), label)


@dataclass(frozen=True)
class StripEvent:
    title: str  # what the strip shows
    at_s: float  # the moment of the event
    start_s: float  # where the 10 s strip starts
    clock: str = ""  # the event's clock time, when the report knows it


def _running_hr(t: np.ndarray, k: int = 8) -> np.ndarray:
    hr = np.full(len(t), np.nan)
    if len(t) > k:
        hr[k:] = 60.0 * k / np.maximum(t[k:] - t[:-k], 1e-6)
    return hr


def report_events(result: Any, duration_s: float) -> list[StripEvent]:
    """The events a Holter report shows as strips (see the module), in report order."""
    s = result.summary
    h = s.get("holter") or {}
    beats = result.beats
    events: list[StripEvent] = []

    def add(title: str, at: float, lead_in: float = 3.0) -> None:
        start = float(min(max(0.0, at - lead_in), max(0.0, duration_s - _STRIP_S)))
        events.append(StripEvent(title, float(at), start))

    longest = (h.get("pauses") or {}).get("longest")
    if longest:
        add(f"longest pause {longest['duration_s']:.2f} s", longest["time_s"], 3.0)
    if beats is not None and len(beats):
        ok = beats[beats["analysed"]]
        t = ok["time_s"].to_numpy()
        hr = _running_hr(t)
        rate = s.get("heart_rate") or {}
        for key, pick, word in (("min", np.nanargmin, "slowest"), ("max", np.nanargmax, "fastest")):
            entry = rate.get(key)
            if not entry:
                continue
            m0 = 60.0 * entry["minute"]
            inside = (t >= m0) & (t < m0 + 60.0) & np.isfinite(hr)
            if inside.any():
                i = np.flatnonzero(inside)[pick(hr[inside])]
                add(
                    f"{word} heart rate: {hr[i]:.0f} bpm over 8 beats (minute mean {entry['bpm']:.0f} bpm)",
                    t[i],
                    8.0,
                )
    for e in result.episodes:
        if e.label.lower() in ("af", "atrial fibrillation"):
            add(f"first {describe_label(e.label)} onset", e.start_s, 3.0)
            break
    for kind, word in (("V", "ventricular"), ("S", "supraventricular")):
        entry = (h.get("ectopy") or {}).get(kind) or {}
        run = entry.get("longest_run") or entry.get("first")
        if run:
            what = f"{run['beats']} {word} ectopic beats" if run["beats"] > 1 else f"a {word} ectopic beat"
            add(f"{'longest run' if run['beats'] >= 3 else 'first'}: {what}", run["time_s"], 3.0)
    others = [e for e in result.episodes if e.label.lower() not in ("af", "atrial fibrillation")]
    for e in sorted(others, key=lambda e: -e.duration_s)[:2]:
        add(f"{describe_label(e.label)} episode onset ({e.duration_s:.0f} s)", e.start_s, 2.0)
    return events


def _display(x: np.ndarray, fs: float) -> np.ndarray:
    """0.5-40 Hz, zero phase: the baseline and mains hum removed for reading, the QRS kept."""
    from scipy.signal import butter, sosfiltfilt

    if len(x) < 3 * fs:
        return x - np.median(x)
    sos = butter(2, [0.5, min(40.0, 0.45 * fs)], btype="bandpass", fs=fs, output="sos")
    return sosfiltfilt(sos, np.where(np.isfinite(x), x, 0.0))


def strip_page(
    strips: list[tuple[StripEvent, Any, str, list[tuple[float, str]]]],
    *,
    paper: str = "a4",
    header: str = "",
    footer: str = "",
) -> tuple[Any, list[dict[str, tuple[float, float, float, float]]]]:
    """One page of up to three strips. ``strips``: (event, record of the strip's 10 s, lead name,
    [(time s, beat class), ...] of the non-N beats in it). Returns the figure and, per strip, the
    boxes (x0, y0, x1, y1 in mm from the page's bottom left) of its ``grid`` and ``label``."""
    from matplotlib.figure import Figure

    from ..viz.ecgplot import paper_grid

    width, height = PAPERS[paper]
    fig = Figure(figsize=(width * _MM, height * _MM))
    fig.patch.set_facecolor("white")
    grid_w = _CAL_MM + _STRIP_S * _SPEED
    left = (width - grid_w) / 2
    fig.text(left / width, 1 - 10 / height, header, fontsize=9, fontweight="bold", va="center")
    fig.text(
        1 - left / width,
        1 - 10 / height,
        f"{_SPEED:g} mm/s   {_GAIN:g} mm/mV",
        fontsize=8,
        va="center",
        ha="right",
    )
    boxes = []
    pitch = _GRID_H + 17.0
    for k, (event, record, lead, marks) in enumerate(strips):
        top = height - 18.0 - k * pitch
        g0 = top - 12.0 - _GRID_H  # bottom of the grid
        ax = fig.add_axes((left / width, g0 / height, grid_w / width, _GRID_H / height))
        ax.set_xlim(0, grid_w)
        ax.set_ylim(0, _GRID_H)
        ax.set_axis_off()
        paper_grid(ax, grid_w, _GRID_H)
        y0 = _GRID_H / 2
        w = 0.2 * _SPEED
        ax.plot(
            [0, 2, 2, 2 + w, 2 + w, _CAL_MM],
            [y0 - 5, y0 - 5, y0 + 5, y0 + 5, y0 - 5, y0 - 5],
            color="black",
            lw=0.6,
        )
        fs = float(record.fs)
        x = _display(np.asarray(record.signal[list(record.leads).index(lead)], dtype=np.float64), fs)
        x = x - np.median(x)
        xs = _CAL_MM + np.arange(len(x)) / fs * _SPEED
        ax.plot(xs, y0 + x * _GAIN, color="black", lw=0.55, zorder=3, clip_on=True)
        title = f"{event.title} at {event.clock}" if event.clock else event.title
        fig.text(left / width, (top - 3.0) / height, title, fontsize=9, fontweight="bold", va="center")
        label_y = top - 8.5
        fig.text(left / width, label_y / height, f"lead {lead}", fontsize=8, va="center", color="#222222")
        for t, c in marks:
            mx = left + _CAL_MM + t * _SPEED
            if left + 20 < mx < left + grid_w:
                fig.text(
                    mx / width, label_y / height, c, fontsize=7, ha="center", va="center", color="#7a0000"
                )
        boxes.append(
            {
                "grid": (left, g0, left + grid_w, g0 + _GRID_H),
                "label": (left, label_y - 2.0, left + 18.0, label_y + 2.0),
            }
        )
    fig.text(0.5, 6 / height, footer, fontsize=7, ha="center", va="center", color="#444444")
    return fig, boxes


def write_report(
    result: Any,
    long: Any,
    path: str | os.PathLike[str],
    *,
    lead: str | None = None,
    paper: str = "a4",
    first_page_png: str | os.PathLike[str] | None = None,
) -> Path:
    """Write the report of ``result`` (a :class:`~ecgfounder.monitor.MonitorResult`) read from
    ``long`` (the :class:`~ecgfounder.io.chunks.LongRecording`) to ``path`` on ``paper``
    (``a4`` or ``letter``, landscape); ``first_page_png`` also saves the first page as a picture."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_pdf import PdfPages

    if paper not in PAPERS:
        raise ValueError(f"paper must be one of {', '.join(PAPERS)} (got {paper!r})")
    s = result.summary
    start = (s.get("patient") or {}).get("start")
    events = report_events(result, long.duration_s)
    pages = 1 + math.ceil(len(events) / _STRIPS_PER_PAGE)
    name = Path(str(s["record"])).name
    path = Path(path)
    strip_lead = lead if lead in long.leads else ("II" if "II" in long.leads else long.leads[0])
    with PdfPages(path) as pdf:
        fig = _first_page(result, paper, name, start, f"page 1 of {pages}")
        pdf.savefig(fig)
        if first_page_png is not None:
            fig.savefig(first_page_png, dpi=110)
        for p in range(1, pages):
            chunk = events[(p - 1) * _STRIPS_PER_PAGE : p * _STRIPS_PER_PAGE]
            strips = []
            for e in chunk:
                a = int(e.start_s * long.fs)
                b = int(min(long.duration_s, e.start_s + _STRIP_S) * long.fs)
                try:
                    record = long.read(a, b)
                except Exception:  # noqa: BLE001 - a damaged span: the strip is left out
                    continue
                marks = []
                if result.beats is not None:
                    inside = result.beats[
                        (result.beats["time_s"] >= e.start_s)
                        & (result.beats["time_s"] < e.start_s + _STRIP_S)
                        & (result.beats["class"] != "N")
                    ]
                    marks = [
                        (float(t) - e.start_s, str(c)) for t, c in zip(inside["time_s"], inside["class"])
                    ]
                timed = StripEvent(e.title, e.at_s, e.start_s, clock_time(e.at_s, start))
                strips.append(
                    (timed, record, strip_lead if strip_lead in record.leads else record.leads[0], marks)
                )
            fig, _ = strip_page(
                strips,
                paper=paper,
                header=f"{name}: events (strips of 10 s from 3 s before the event; S, V, Q: beat classes)",
                footer=f"page {p + 1} of {pages}. Not a diagnosis: for review by a clinician.",
            )
            pdf.savefig(fig)
    return path


def _summary_lines(s: dict[str, Any], start: str | None) -> list[str]:
    h = s.get("holter") or {}
    rate = s.get("heart_rate") or {}
    lines = []
    b = h.get("beats")
    if b:
        lines.append(
            f"Beats: {b['total']:,} (N {b['N']:,}, S {b['S']:,}, V {b['V']:,}, unclassified {b['Q']:,})"
        )
    if rate.get("mean_bpm") is not None:
        lines.append(f"Heart rate: mean {rate['mean_bpm']:.0f} bpm")
        for key, word in (("min", "lowest"), ("max", "highest")):
            e = rate.get(key)
            if e:
                lines.append(f"  {word} minute {e['bpm']:.0f} bpm at {e['clock']}")
    for key, word, lim in (
        ("bradycardia", "Bradycardia", "below_bpm"),
        ("tachycardia", "Tachycardia", "above_bpm"),
    ):
        e = h.get(key)
        if e is not None:
            longest = e["periods"][0] if e["periods"] else None
            more = (
                f", longest {longest['duration_s']:.0f} s from {clock_time(longest['start_s'], start)}"
                if longest
                else ""
            )
            sign = "<" if key == "bradycardia" else ">"
            lines.append(f"{word} ({sign} {e[lim]:g} bpm for >= 10 s): {e['count']} period(s){more}")
    p = h.get("pauses")
    if p is not None:
        more = (
            f", longest {p['longest']['duration_s']:.2f} s at {p['longest']['clock']}" if p["longest"] else ""
        )
        lines.append(f"Pauses >= {p['at_least_s']:g} s: {p['count']}{more}")
    for kind, word in (("S", "Supraventricular ectopy"), ("V", "Ventricular ectopy")):
        e = (h.get("ectopy") or {}).get(kind)
        if e is not None:
            per = f" ({e['per_hour']:.1f}/h)" if e.get("per_hour") is not None else ""
            counts = f"isolated {e['isolated']}, couplets {e['couplets']}, runs {e['runs']}"
            lines.append(f"{word}: {e['total']}{per}; {counts}")
            if e.get("longest_run"):
                r = e["longest_run"]
                lines.append(f"  longest run {r['beats']} beats at {r['rate_bpm']:.0f} bpm, {r['clock']}")
    v = h.get("hrv")
    if v and v.get("sdnn_ms") is not None:
        sdann = f"{v['sdann_ms']:.0f}" if v.get("sdann_ms") is not None else "n/a (< 10 min)"
        lines.append(
            f"HRV (N-N, {v['n_nn']:,} intervals): SDNN {v['sdnn_ms']:.0f} ms, SDANN {sdann}, "
            f"RMSSD {v['rmssd_ms']:.0f} ms, pNN50 {100 * v['pnn50']:.1f}%"
        )
    expected = s.get("burden_expected", {})
    for label, share in s.get("burden", {}).items():
        more = f" ({100 * expected[label]:.1f}% from the window probabilities)" if label in expected else ""
        episodes = s["episodes"][label]
        lines.append(
            f"{describe_label(label)}: {episodes} episode(s), {100 * share:.1f}% of analysed time{more}"
        )
        if describe_label(label, explained=True) != describe_label(label):
            lines.append(f"  ({describe_label(label, explained=True)})")
    for reason, seconds in s.get("excluded_by_reason", {}).items():
        lines.append(f"Excluded, {reason}: {clock_time(seconds, None)[1:]}")
    return lines


def _first_page(result: Any, paper: str, name: str, start: str | None, footer: str) -> Any:
    from matplotlib.figure import Figure

    s = result.summary
    table = result.windows
    width, height = PAPERS[paper]
    fig = Figure(figsize=(width * _MM, height * _MM))
    patient = s.get("patient") or {}
    who = ", ".join(
        x
        for x in (
            f"age {patient['age']:g}" if patient.get("age") is not None else "age not recorded",
            {"M": "male", "F": "female"}.get(str(patient.get("sex")), "sex not recorded"),
        )
    )
    began = f"started {start.replace('T', ' ')}" if start else "start time not recorded (times are elapsed)"
    fig.text(0.05, 0.955, f"Holter report: {name}", fontsize=13, fontweight="bold")
    fig.text(
        0.05,
        0.925,
        f"Patient: {who}. Recording {began}; {clock_time(s['duration_s'], None)[1:]} recorded, "
        f"{clock_time(s['analysed_s'], None)[1:]} analysed, "
        f"{clock_time(s['excluded_s'], None)[1:]} excluded.",
        fontsize=9,
    )
    fig.text(
        0.05,
        0.9,
        f"Rhythm model {s['model']} (windows of {s['windows']['window_s']:g} s every "
        f"{s['windows']['stride_s']:g} s); beats detected on every lead. "
        "Not a diagnosis: for review by a clinician.",
        fontsize=8,
        color="#444444",
    )
    import textwrap

    wrapped = [
        w
        for line in _summary_lines(s, start)
        for w in textwrap.wrap(line, 72, subsequent_indent="    ") or [""]
    ]
    fig.text(0.05, 0.86, "\n".join(wrapped), fontsize=7.5, va="top", family="monospace")
    hours = s["duration_s"] >= 3 * 3600
    scale, unit = (3600.0, "h") if hours else (60.0, "min")
    centre = (table["start_s"] + (table["end_s"] - table["start_s"]) / 2) / scale
    labels = list(s["burden"])
    ax = fig.add_axes((0.6, 0.56, 0.36, 0.3))
    for i, label in enumerate(labels):
        colour = f"C{i}"
        ax.plot(centre, table[label], lw=0.7, color=colour, label=describe_label(label))
        for e in result.episodes:
            if e.label == label:
                ax.axvspan(e.start_s / scale, e.end_s / scale, color=colour, alpha=0.15, lw=0)
    excluded = table["quality"] != "ok"
    ax.scatter(
        centre[excluded],
        np.full(int(excluded.sum()), -0.05),
        marker="|",
        color="grey",
        s=20,
        label="excluded",
    )
    ax.set_ylim(-0.1, 1.05)
    ax.set_ylabel("probability", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), fontsize=6, ncol=2, frameon=False)
    ax.set_title("rhythm labels over the recording (shaded: episodes)", fontsize=8, loc="left")
    hr = fig.add_axes((0.6, 0.12, 0.36, 0.25), sharex=ax)
    per_minute = (s.get("heart_rate") or {}).get("per_minute") or []
    if per_minute:
        mins = (np.arange(len(per_minute)) * 60.0 + 30.0) / scale
        vals = np.array([np.nan if v is None else v for v in per_minute], dtype=np.float64)
        hr.plot(mins, vals, "-", lw=0.8, color="black")
    hr.plot(centre, table["hr_bpm"], ".", ms=1.5, color="grey")
    hr.set_ylabel("heart rate (bpm)", fontsize=8)
    hr.set_xlabel(f"time ({unit} from the start)", fontsize=8)
    hr.tick_params(labelsize=7)
    hr.set_title("heart rate: per minute (line), per window (dots)", fontsize=8, loc="left")
    fig.text(
        0.5,
        0.02,
        footer + ". Not a diagnosis: for review by a clinician.",
        fontsize=7,
        ha="center",
        color="#444444",
    )
    return fig
