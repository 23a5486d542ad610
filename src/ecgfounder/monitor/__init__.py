"""Long recordings (Holter, patches, watches): windows, episodes, burden and heart rate."""

from .episodes import Episode, EpisodeRules, burden, expected_burden, find_episodes, fuse_rr, owned_spans
from .run import MonitorResult, monitor, window_starts_s

__all__ = [
    "monitor",
    "MonitorResult",
    "EpisodeRules",
    "Episode",
    "find_episodes",
    "fuse_rr",
    "burden",
    "expected_burden",
    "owned_spans",
    "window_starts_s",
]
