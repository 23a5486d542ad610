"""Figures: the clinical ECG rendering (with attribution and fiducial overlays)."""

from .ecgplot import LAYOUTS, PlotGeometry, plot_ecg, save_figure

__all__ = ["LAYOUTS", "PlotGeometry", "plot_ecg", "save_figure"]
