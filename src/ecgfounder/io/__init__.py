"""I/O layer: read ECG files of many formats into :class:`ECGRecord` (float32 mV, canonical leads)."""

from ._build import parse_header_comments
from .annotations import read_ludb_fiducials, read_wfdb_annotations
from .leads import canonical_lead, derive_limb_leads, is_non_ecg_channel, select_leads
from .limits import DEFAULT_LIMITS, ReadLimits
from .reader import FORMATS, OUT_OF_MEMORY, detect_format, read_demographics, read_ecg, write_npz
from .record import ECGRecord
from .sources import SCAN_SUFFIXES, Source, expand_inputs
from .wfdb_io import header_comments

__all__ = [
    "parse_header_comments",
    "header_comments",
    "Source",
    "expand_inputs",
    "SCAN_SUFFIXES",
    "ReadLimits",
    "DEFAULT_LIMITS",
    "read_ludb_fiducials",
    "read_wfdb_annotations",
    "ECGRecord",
    "read_ecg",
    "read_demographics",
    "detect_format",
    "FORMATS",
    "OUT_OF_MEMORY",
    "write_npz",
    "canonical_lead",
    "derive_limb_leads",
    "is_non_ecg_channel",
    "select_leads",
]
