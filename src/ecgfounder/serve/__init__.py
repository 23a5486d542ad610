"""HTTP service (FastAPI) with a web page; needs the ``serve`` extra."""

from .app import create_app
from .security import default_allowed_hosts
from .server import run as run_server
from .server import uvicorn_config
from .settings import SERVICE_READ_LIMITS, ServeSettings

__all__ = [
    "ServeSettings",
    "create_app",
    "SERVICE_READ_LIMITS",
    "default_allowed_hosts",
    "run_server",
    "uvicorn_config",
]
