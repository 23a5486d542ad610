"""HTTP service (FastAPI) with a web page; needs the ``serve`` extra."""

from .app import ServeSettings, create_app

__all__ = ["ServeSettings", "create_app"]
