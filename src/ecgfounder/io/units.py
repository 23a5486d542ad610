"""Physical units of ECG channels, converted to millivolts."""

from __future__ import annotations

__all__ = ["to_mv_factor"]

_FACTORS = {
    "mv": 1.0,
    "millivolt": 1.0,
    "millivolts": 1.0,
    "uv": 1e-3,
    "µv": 1e-3,
    "μv": 1e-3,
    "microvolt": 1e-3,
    "microvolts": 1e-3,
    "v": 1e3,
    "volt": 1e3,
    "volts": 1e3,
    "nv": 1e-6,
    "nanovolt": 1e-6,
    "nanovolts": 1e-6,
}


def to_mv_factor(units: str | None) -> float | None:
    """Multiplier that turns values in ``units`` into mV; ``None`` when the unit is not a voltage."""
    if units is None:
        return None
    key = units.strip().lower().replace(" ", "")
    return _FACTORS.get(key)
