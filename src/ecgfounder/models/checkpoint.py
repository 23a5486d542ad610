"""Reading and writing model files safely.

* Official files (``torch.save({'state_dict': ...})``, with ``module.``/``_orig_mod.`` prefixes from
  DataParallel/DDP/``torch.compile``) are read with ``torch.load(weights_only=True)`` only.
* Our format is a safetensors file whose metadata holds the architecture, the input contract, the
  label names, thresholds and provenance as JSON strings.
* Architectures of files that carry no config are inferred from tensor shapes.
* Loading is strict: missing, unexpected or mis-shaped tensors are listed in one error.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import CheckpointError, clip
from .config import Net1DConfig

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "read_checkpoint",
    "infer_config",
    "check_state_dict",
    "write_checkpoint",
    "sha256_file",
    "strip_prefixes",
    "is_torchscript",
]

FORMAT_NAME = "ecgfounder"
FORMAT_VERSION = 1
TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
_PREFIXES = ("module.", "_orig_mod.")
_MAX_LISTED = 12


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def strip_prefixes(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Remove any chain of ``module.`` / ``_orig_mod.`` prefixes from every key."""
    out: dict[str, Any] = {}
    for key, value in state_dict.items():
        new = key
        while new.startswith(_PREFIXES):
            new = new.split(".", 1)[1]
        if new in out:
            raise ValueError(f"two tensors map to {new!r} once prefixes are removed")
        out[new] = value
    return out


def is_torchscript(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a TorchScript archive (``torch.jit.save``), judged by its content, not
    its name: a zip holding ``constants.pkl`` and a ``code/`` folder (a ``torch.save`` checkpoint
    holds ``data.pkl`` and no code). Only the zip's directory is read."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()[:10_000]
    except (OSError, zipfile.BadZipFile, ValueError):
        return False
    return any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names)


def _torch_load(path: Path) -> Any:
    if is_torchscript(path):
        raise CheckpointError(
            path,
            "a TorchScript export (`ecgfounder export ... -o FILE.pt`): `predict`, "
            "`embed`, `serve` and `info` run it as it is (torch.jit.load, no pickled Python "
            "code); fine-tuning and `load_model` need the weights (.safetensors or .pth)",
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            path,
            "refused to load: the file holds pickled Python objects other "
            "than tensors and plain containers, which could run code when "
            "unpickled (loaded with weights_only=True; details: "
            f"{clip(str(exc).splitlines()[0], 200)})",
        ) from None
    except (EOFError, zipfile.BadZipFile) as exc:
        raise CheckpointError(path, f"file is truncated or corrupt ({type(exc).__name__})") from None
    except RuntimeError as exc:
        msg = str(exc)
        if "zip" in msg.lower() or "central directory" in msg or "PytorchStreamReader" in msg:
            raise CheckpointError(
                path, "file is truncated or corrupt (not a readable PyTorch zip archive)"
            ) from None
        raise CheckpointError(path, f"cannot be read as a PyTorch checkpoint ({clip(msg, 300)})") from None
    except Exception as exc:  # noqa: BLE001 - any other failure of an untrusted file is reported
        raise CheckpointError(
            path, f"cannot be read as a PyTorch checkpoint ({type(exc).__name__}: {clip(str(exc), 300)})"
        ) from None


def _unwrap(obj: Any, path: Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The state dict inside a loaded object, plus the scalar extras (epoch, step...)."""
    extras: dict[str, Any] = {}
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model_state_dict", "model"):
            if key in obj and isinstance(obj[key], Mapping):
                extras = {k: v for k, v in obj.items() if k != key and isinstance(v, (int, float, str, bool))}
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(
            path,
            "holds no state dict (expected a mapping of tensor names to "
            "tensors, or a dict with key 'state_dict')",
        )
    bad = [str(k) for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        raise CheckpointError(
            path, f"state dict has {len(bad)} entries that are not tensors: {', '.join(bad[:_MAX_LISTED])}"
        )
    try:
        return strip_prefixes(obj), extras
    except ValueError as exc:
        raise CheckpointError(path, str(exc)) from None


def read_checkpoint(
    path: str | os.PathLike[str],
) -> tuple[dict[str, Tensor], dict[str, str] | None, dict[str, Any]]:
    """Read a model file: ``(state_dict, our_metadata_or_None, extras)``.

    ``our_metadata`` is the safetensors metadata when the file is in our format, else ``None``.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(path, "no such file")
    if not path.is_file():
        raise CheckpointError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise CheckpointError(path, "file is empty")
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt", device="cpu") as fh:
                metadata = fh.metadata() or {}
                state = {k: fh.get_tensor(k) for k in fh.keys()}
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
            raise CheckpointError(
                path, f"not a readable safetensors file (truncated or corrupt: {clip(str(exc), 200)})"
            ) from None
        if not state:
            raise CheckpointError(path, "safetensors file holds no tensors")
        try:
            state = strip_prefixes(state)
        except ValueError as exc:
            raise CheckpointError(path, str(exc)) from None
        ours = metadata if metadata.get("format") == FORMAT_NAME else None
        return state, ours, ({} if ours is not None else {"metadata": dict(metadata)})
    if path.suffix not in TORCH_SUFFIXES:
        raise CheckpointError(
            path,
            f"unknown model file type {path.suffix!r} (expected .safetensors "
            f"or one of {', '.join(TORCH_SUFFIXES)})",
        )
    state, extras = _unwrap(_torch_load(path), path)
    return state, None, extras


_STAGE_KEY = re.compile(r"^stage_list\.(\d+)\.block_list\.(\d+)\.conv3\.conv\.weight$")


def infer_config(
    state_dict: Mapping[str, Tensor], source: str | os.PathLike[str] = "<state dict>", **overrides: Any
) -> tuple[Net1DConfig, list[str]]:
    """Recover the :class:`Net1DConfig` of a state dict from its tensor shapes.

    Widths, block counts, kernel size, bottleneck ratio, group width, input leads and outputs come
    from shapes. ``stride`` cannot be seen in a shape (2 unless overridden). ``use_bn`` is read from
    the BatchNorm tensors: left at their initial values (weight 1, bias 0, mean 0, var 1) means
    BatchNorm was never used in training, so ``use_bn=False``; anything else means ``True``.
    ``overrides`` win over everything. Returns the config and notes on what was inferred how.
    """
    notes: list[str] = []

    def need(key: str) -> Tensor:
        if key not in state_dict:
            raise CheckpointError(
                source,
                "does not look like an ECGFounder Net1D state dict: "
                f"no tensor {key!r} (first keys: {', '.join(list(state_dict)[:5])})",
            )
        return state_dict[key]

    first = need("first_conv.conv.weight")
    if first.ndim != 3:
        raise CheckpointError(
            source, f"first_conv.conv.weight has shape {tuple(first.shape)}, expected (out, in, kernel)"
        )
    base_filters, in_channels, kernel_size = (int(v) for v in first.shape)

    blocks: dict[int, int] = {}
    widths: dict[int, int] = {}
    for key, tensor in state_dict.items():
        m = _STAGE_KEY.match(key)
        if m:
            s, b = int(m.group(1)), int(m.group(2))
            blocks[s] = max(blocks.get(s, 0), b + 1)
            if b == 0:
                widths[s] = int(tensor.shape[0])
    if not blocks or sorted(blocks) != list(range(len(blocks))) or set(widths) != set(blocks):
        raise CheckpointError(source, "stage_list tensors are missing or not numbered 0..n-1")
    n_stages = len(blocks)
    filter_list = tuple(widths[s] for s in range(n_stages))
    m_blocks_list = tuple(blocks[s] for s in range(n_stages))

    middle0 = int(need("stage_list.0.block_list.0.conv1.conv.weight").shape[0])
    ratio: float = middle0 / filter_list[0]
    if float(ratio).is_integer():
        ratio = int(ratio)
    groups = []
    for s in range(n_stages):
        w = need(f"stage_list.{s}.block_list.0.conv2.conv.weight")
        groups.append(int(w.shape[0]) // int(w.shape[1]))
    # groups = width // groups_width for every stage; find the group width that explains all.
    candidates = [
        g
        for g in range(1, max(filter_list) + 1)
        if all(width // g == n for width, n in zip(filter_list, groups))
    ]
    if not candidates:
        raise CheckpointError(
            source,
            f"no group width explains the grouped convolutions "
            f"(widths {filter_list}, groups {tuple(groups)})",
        )
    groups_width = min(candidates, key=lambda g: (g != filter_list[0] // groups[0], g))

    if "dense.weight" in state_dict:
        n_classes = int(state_dict["dense.weight"].shape[0])
    else:
        n_classes = 0
        notes.append("no 'dense' head: built as a backbone (n_classes=0)")

    if "use_bn" in overrides:
        use_bn = bool(overrides["use_bn"])
    elif _batchnorm_was_run(state_dict):
        use_bn = True
        notes.append("use_bn=True: the BatchNorm counters show it ran in training")
    else:
        use_bn = False
        notes.append(
            "use_bn=False assumed (the released setting; shapes cannot tell, pass "
            "use_bn=True for a model trained with BatchNorm)"
        )
    if "stride" not in overrides:
        notes.append("stride=2 assumed (not visible in tensor shapes)")

    cfg = dict(
        in_channels=in_channels,
        base_filters=base_filters,
        ratio=ratio,
        filter_list=filter_list,
        m_blocks_list=m_blocks_list,
        kernel_size=kernel_size,
        stride=2,
        groups_width=groups_width,
        n_classes=n_classes,
        use_bn=use_bn,
        use_do=False,
    )
    unknown = set(overrides) - set(cfg)
    if unknown:
        raise TypeError(f"unknown architecture override(s): {sorted(unknown)}")
    cfg.update(overrides)
    try:
        config = Net1DConfig(**cfg)  # type: ignore[arg-type]
        config.validate()
    except (TypeError, ValueError) as exc:
        raise CheckpointError(source, f"inferred architecture is not valid: {exc}") from None
    return config, notes


def _batchnorm_was_run(state_dict: Mapping[str, Tensor]) -> bool:
    """True when a BatchNorm counter shows it ran in training mode (``num_batches_tracked > 0``)."""
    return any(
        key.endswith("num_batches_tracked") and t.numel() == 1 and int(t) > 0 for key, t in state_dict.items()
    )


def check_state_dict(
    model: nn.Module, state_dict: Mapping[str, Tensor], source: str | os.PathLike[str]
) -> None:
    """Raise one :class:`CheckpointError` listing every missing, unexpected or mis-shaped tensor."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [
        f"{k} (file {tuple(state_dict[k].shape)}, model {tuple(v.shape)})"
        for k, v in expected.items()
        if k in state_dict and state_dict[k].shape != v.shape
    ]
    if not (missing or unexpected or mismatched):
        return

    def fmt(title: str, items: list[str]) -> str:
        more = f", ... ({len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else ""
        return f"{len(items)} {title}: {', '.join(items[:_MAX_LISTED])}{more}"

    parts = [
        fmt(t, i)
        for t, i in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", mismatched))
        if i
    ]
    raise CheckpointError(source, "does not match the architecture: " + "; ".join(parts))


def write_checkpoint(
    path: str | os.PathLike[str], state_dict: Mapping[str, Tensor], metadata: Mapping[str, Any]
) -> Path:
    """Write tensors and JSON-encoded metadata as safetensors, atomically (temp file + rename)."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"{path}: our checkpoint format is safetensors; use a .safetensors name")
    meta = {"format": FORMAT_NAME, "format_version": str(FORMAT_VERSION)}
    for key, value in metadata.items():
        meta[key] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=meta)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a checkpoint is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
