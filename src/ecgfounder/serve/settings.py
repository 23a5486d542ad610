"""The service's settings: limits and switches, all with safe defaults (docs/security.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..io import ReadLimits

__all__ = ["ServeSettings", "SERVICE_READ_LIMITS"]


# What one upload may declare or unpack in the service: 20 million values is 600 s of 12 leads at
# 2.7 kHz, or of 15 leads at 2 kHz; 200 MB bounds a deflated DICOM data set or an XML file.
SERVICE_READ_LIMITS = ReadLimits(
    max_values=20_000_000, max_channels=64, max_bytes=200 << 20, max_header_bytes=256 << 10
)


@dataclass
class ServeSettings:
    """Limits and switches of the service (all have safe defaults; see docs/security.md)."""

    model: str = "ecgfounder-12lead"
    index: str | None = None  # an index folder (ecgfounder index) for /v1/similar
    max_upload_mb: float = 20.0  # whole request body
    max_unpacked_mb: float = 100.0  # all zips of one request, unpacked
    max_duration_s: float = 600.0  # longest recording accepted
    max_zip_members: int = 16
    max_zip_ratio: float = 50.0  # uncompressed / compressed, per member (zip bombs)
    timeout_s: float = 60.0  # per request; a parse still running then is killed
    parse_timeout_s: float | None = None  # reading + preparing one upload (None: timeout_s)
    api_key: str | None = None  # X-API-Key header required when set
    cors_origins: list[str] = field(default_factory=list)
    allowed_hosts: list[str] | None = None  # Host names answered; None: loopback names ("*": any)
    max_batch: int = 32  # windows per model call
    batch_wait_ms: float = 5.0  # how long the batcher waits for company
    top_k: int = 5
    workers: int = 2  # parse worker processes (uploads parsed at once)
    worker_memory_mb: int = 1024  # address space a parse may add to an idle worker's
    max_queue: int = 16  # uploads waiting for a worker; past that 503 + Retry-After
    max_inflight: int = 64  # requests being answered at once (not /healthz); then 503
    max_per_client: int = 8  # requests in progress from one client address (0: no limit); then 429
    head_timeout_s: float = 10.0  # a connection must send its request head within this
    body_timeout_s: float = 60.0  # ... and the whole body within this after the head; then 408
    body_grace_s: float = 5.0  # after this, the body must arrive at body_min_rate on average
    body_min_rate: float = 4096.0  # bytes per second (0: no minimum); then 408
    memory_budget_mb: float = 512.0  # request bodies + parsed records held by the server at once; then 503
    read_limits: ReadLimits = field(default_factory=lambda: SERVICE_READ_LIMITS)
