"""Imported by the parse workers' forkserver (``set_forkserver_preload``): warms it up once."""

try:
    from .workers import _preload

    _preload()
except Exception:  # noqa: BLE001 - a failed warm-up only makes the first parse slower
    pass
