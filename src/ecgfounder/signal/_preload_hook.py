"""Imported by the reading workers' forkserver (``set_forkserver_preload``): warms it up once."""

try:
    from .stream import warm_up

    warm_up()
except Exception:  # noqa: BLE001 - a failed warm-up only makes the first record slower
    pass
