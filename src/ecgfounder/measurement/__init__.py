"""Clinical ECG measurements (heart rate, PR, QRS, QT, QTc, P/QRS/T axes) from a wave delineation,
with flags where a value cannot be measured; per-beat fiducials for those who build on them."""

from .core import MEASURE_COLUMNS, Measurements, measure, measure_inputs, measure_row
from .delineate import delineate, load_delineator
from .intervals import GlobalBeat, global_beats, summarise_beats
from .reference import Wave, ludb_waves, reference_measurements

__all__ = [
    "measure",
    "measure_inputs",
    "measure_row",
    "Measurements",
    "MEASURE_COLUMNS",
    "delineate",
    "load_delineator",
    "GlobalBeat",
    "global_beats",
    "summarise_beats",
    "Wave",
    "ludb_waves",
    "reference_measurements",
]
