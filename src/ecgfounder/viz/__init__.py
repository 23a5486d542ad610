"""Figures: the clinical ECG rendering (with attribution and fiducial overlays), training curves."""

from .curves import plot_training_curves
from .ecgplot import LAYOUTS, PlotGeometry, plot_ecg, save_figure

__all__ = ["LAYOUTS", "PlotGeometry", "plot_ecg", "save_figure", "plot_training_curves"]
