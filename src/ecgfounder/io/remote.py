"""ECG files in object storage (``s3://``, ``gs://``, ``az://``...) through ``fsspec``.

A remote input is listed like a local folder (:func:`expand_remote`) and read by copying it, with
the companions it needs, into a private temporary folder (:func:`local_copy`): a WFDB header's
signal files, named in the header, are fetched only from the header's own prefix (a name with a
folder part, ``..`` or a scheme is refused: a file never makes us read elsewhere). Sizes are checked
against :data:`~ecgfounder.io.limits` before anything is downloaded. Credentials come from the
environment and the standard configuration files of each store (``AWS_*``, ``~/.aws``,
``GOOGLE_APPLICATION_CREDENTIALS``, ``AZURE_STORAGE_*``); none is ever printed or written.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import ECGFounderError, ECGInputError

__all__ = ["is_url", "expand_remote", "local_copy", "filesystem"]

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")


def is_url(path: Any) -> bool:
    """A path with a scheme other than ``file://``."""
    m = _SCHEME.match(str(path))
    return bool(m) and m.group(1).lower() != "file"


def filesystem(url: str) -> tuple[Any, str]:
    """(fsspec filesystem, path inside it) for ``url``; a clear error when the store's package is
    missing (s3fs, gcsfs, adlfs)."""
    try:
        import fsspec
    except ImportError:
        raise ECGFounderError(
            f"{url}: object storage needs fsspec (pip install 'ecgfounder[scale]')"
        ) from None
    try:
        return fsspec.core.url_to_fs(url)
    except ImportError as exc:
        raise ECGFounderError(f"{url}: {exc}") from None


def expand_remote(url: str, suffixes: tuple[str, ...]) -> list[str]:
    """The ECG files under ``url`` (a file, or a prefix searched recursively for ``suffixes``), as
    URLs in sorted order. WFDB records are named by their header."""
    fs, path = filesystem(url)
    scheme = _SCHEME.match(url).group(1)  # type: ignore[union-attr]
    try:
        if fs.isfile(path):
            return [url]
        found = fs.find(path)
    except OSError as exc:
        raise ECGFounderError(f"{url}: cannot list ({type(exc).__name__})") from None
    wanted = tuple(s.lower() for s in suffixes)
    return sorted(f"{scheme}://{p}" for p in found if p.lower().endswith(wanted))


def _companions(header: Path, record: str) -> list[str]:
    """The signal files a WFDB header names, refused when one names another folder."""
    names: list[str] = []
    lines = [
        ln
        for ln in header.read_text(encoding="latin-1").splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    for line in lines[1:]:
        name = line.split()[0]
        if name in names or name == "~":
            continue
        if "/" in name or "\\" in name or name.startswith(".") or _SCHEME.match(name):
            raise ECGInputError(f"{record}.hea", f"signal file {name!r} is outside the record's folder")
        names.append(name)
    return names


@contextlib.contextmanager
def local_copy(url: str, limits: Any = None) -> Iterator[Path]:
    """A local copy of the remote ECG file ``url`` (and a WFDB record's signal files), removed on
    exit; each file's size is checked against ``limits.max_bytes`` before it is fetched."""
    from .limits import check_bytes

    fs, path = filesystem(url)
    folder = Path(tempfile.mkdtemp(prefix="ecgfounder-remote-"))
    try:
        base = path.rsplit("/", 1)
        prefix = base[0] if len(base) == 2 else ""
        name = base[-1]

        def get(remote: str, local: Path) -> None:
            try:
                size = fs.size(remote)
            except (OSError, FileNotFoundError):
                raise ECGInputError(url, f"{remote.rsplit('/', 1)[-1]} not found in the store") from None
            check_bytes(url, int(size or 0), limits, what=remote.rsplit("/", 1)[-1])
            fs.get_file(remote, str(local))

        local = folder / name
        get(path, local)
        if name.lower().endswith(".hea"):
            record = url[: -len(".hea")]
            for companion in _companions(local, record):
                get(f"{prefix}/{companion}" if prefix else companion, folder / companion)
        yield local
    finally:
        shutil.rmtree(folder, ignore_errors=True)
