"""Long recordings (Holter, patches, watches): windows, episodes, burden, beats and the Holter summary."""

from .episodes import Episode, EpisodeRules, burden, expected_burden, find_episodes, fuse_rr, owned_spans
from .holter import HolterRules, clock_time, holter_summary, hrv_time_domain
from .run import MonitorResult, episode_rules_for, monitor, window_starts_s

__all__ = [
    "monitor",
    "MonitorResult",
    "episode_rules_for",
    "EpisodeRules",
    "Episode",
    "find_episodes",
    "fuse_rr",
    "burden",
    "expected_burden",
    "owned_spans",
    "window_starts_s",
    "HolterRules",
    "holter_summary",
    "hrv_time_domain",
    "clock_time",
]
