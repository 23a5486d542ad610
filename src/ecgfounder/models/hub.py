"""Fetching registered weights: a local weights folder, a file in the package, or the Hugging Face hub."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from ..errors import WeightsUnavailableError, clip
from .registry import ModelEntry

__all__ = ["resolve_weights", "WEIGHTS_DIR_ENV"]

#: A folder searched first for registered weight files by file name (for machines without network).
WEIGHTS_DIR_ENV = "ECGFOUNDER_WEIGHTS_DIR"


def resolve_weights(
    entry: ModelEntry,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool | None = None,
) -> Path:
    """Local path of ``entry``'s weight file, downloading it into the hub cache if needed.

    Order: ``$ECGFOUNDER_WEIGHTS_DIR/<repository name>/<filename>``, then
    ``$ECGFOUNDER_WEIGHTS_DIR/<filename>``; a file shipped in the package; the Hugging Face hub
    cache (``cache_dir``, default ``$HF_HUB_CACHE``), downloaded at ``revision`` (default: the
    entry's pinned revision, else ``main``) unless ``local_files_only`` or ``$HF_HUB_OFFLINE=1``.
    """
    src = entry.weights
    if src is None:
        raise WeightsUnavailableError(
            entry.name,
            "this registered model has no pretrained weights (an architecture only: use pretrained=False)",
        )
    local_dir = os.environ.get(WEIGHTS_DIR_ENV)
    if local_dir:
        # DIR/<repo name>/<file> first (`hf download REPO --local-dir DIR/<repo name>`): several
        # repositories name their file alike (HuBERT-ECG's sizes: model.safetensors)
        repo_dir = Path(local_dir) / src.hub_repo.split("/")[-1] if src.hub_repo else None
        for candidate in ([repo_dir / src.filename] if repo_dir else []) + [Path(local_dir) / src.filename]:
            if candidate.is_file():
                return candidate
    if src.package_file:
        path = Path(str(resources.files("ecgfounder").joinpath(src.package_file)))
        if not path.is_file():
            raise WeightsUnavailableError(
                entry.name,
                f"packaged weight file {path} is missing; "
                "the installation is incomplete, reinstall ecgfounder",
            )
        return path
    assert src.hub_repo is not None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    rev = revision or src.revision
    where = f"{src.hub_repo}/{src.filename}" + (f" at revision {rev}" if rev else "")
    how = (
        f"Download it where there is network access: `hf download {src.hub_repo} {src.filename} "
        f"--local-dir DIR/{src.hub_repo.split('/')[-1]}` (the `hf` command comes with this install), then "
        f"set {WEIGHTS_DIR_ENV}=DIR, "
        f"or pass the file itself (`--model DIR/{src.filename}`, load_model('DIR/{src.filename}')). "
        "Offline now: the bundled single-lead rhythm model, `--model cinc2017-rhythm-tiny`"
    )
    offline = bool(local_files_only) or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    if not offline:
        try:  # in the cache already: no network needed
            return Path(
                hf_hub_download(
                    src.hub_repo,
                    src.filename,
                    revision=rev,
                    cache_dir=cache_dir,
                    local_files_only=True,
                    library_name="ecgfounder",
                )
            )
        except (LocalEntryNotFoundError, OSError):
            pass
        if not _hub_reachable():  # fail in seconds, not after the hub client's retries
            raise WeightsUnavailableError(
                entry.name,
                f"weight file {where} is not in the local cache and "
                f"the hub cannot be reached (no network). {how}",
            )
    try:
        return Path(
            hf_hub_download(
                src.hub_repo,
                src.filename,
                revision=rev,
                cache_dir=cache_dir,
                local_files_only=offline,
                library_name="ecgfounder",
            )
        )
    except LocalEntryNotFoundError:
        raise WeightsUnavailableError(
            entry.name,
            f"weight file {where} is not in the local cache and the hub cannot be reached (offline). {how}",
        ) from None
    except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError) as exc:
        raise WeightsUnavailableError(
            entry.name, f"weight file {where} was not found on the hub ({type(exc).__name__}). {how}"
        ) from None
    except (HfHubHTTPError, OSError) as exc:
        raise WeightsUnavailableError(
            entry.name, f"could not download {where} ({type(exc).__name__}: {clip(str(exc), 200)}). {how}"
        ) from None


def _hub_reachable(timeout_s: float = 3.0) -> bool:
    """Whether the hub's host accepts a TCP connection within ``timeout_s`` (name lookup included)."""
    import socket
    import threading
    from urllib.parse import urlparse

    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                result.append(True)
        except OSError:
            result.append(False)

    t = threading.Thread(target=probe, daemon=True)  # a stuck name lookup cannot hold us longer
    t.start()
    t.join(timeout_s + 0.5)
    return bool(result and result[0])
