"""Unsupervised adaptation of a trained model to a new site or device: unlabelled records of the
target domain in, an ordinary model out.

Methods (``method``: one, or several joined by ``+`` and applied in that order):

* ``tent``: test-time entropy minimisation (TENT, Wang et al., ICLR 2021) of a small set of
  parameters on the target windows: ``tent_params`` ``input`` (the first convolution: how the
  leads are read), ``bias`` (every bias of the network, as BitFit) or ``last`` (the last stage).
  The released Net1D runs without BatchNorm (``use_bn=False``: its BatchNorm tensors exist but are
  never applied), so TENT's usual affine-of-BatchNorm and AdaBN's statistics re-estimation have
  nothing to act on; these parameter sets are what is left. The trained values replace the old ones.
* ``align``: feature alignment of the pooled embedding (``align``: ``meanvar``, each feature moved
  to the source mean and standard deviation; or ``coral``, Sun et al. 2016, the target covariance
  recoloured to the source's). The map is affine and the head linear, so it is folded into the
  head: same network, same size, new head weights. The source statistics come from ``source``
  records (the training domain), computed with the model itself.
* ``prior`` (the default): label-shift correction (Saerens et al., Neural Computation 2002): the
  target's class priors re-estimated by EM from the model's own outputs, the head's biases moved
  by ``log(target prior / source prior)``, conservatively: by the end of its bootstrap interval
  nearest zero, zero where the interval holds zero (:func:`prior_shift`). The source prior is the
  model's mean output on held-out windows of its training domain: carried by the bundled models
  and by models ``train`` writes (``output_prior`` in the provenance), else measured on
  ``source`` records. One-of-N models only.
* ``ssl``: continued self-supervised pretraining of the whole network on the target records
  (:mod:`ecgfounder.train.ssl`, ``objective``), the classification head kept as it was.

The adapted model keeps the architecture, input contract, labels, thresholds and aggregation of
the original (every command takes it like any other model) and carries the adaptation in its
provenance: ``adaptation`` lists each step with its method, settings, number of records, a hash
of their ids, the data named and the date. Adapting an adapted model appends to that list.
"""

from __future__ import annotations

import datetime
import hashlib
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data import Manifest, WindowCache, assign_splits
from ..errors import ECGFounderError
from ..models import load_model, save_model
from .config import ADAPT_METHODS, DEFAULT_ADAPT_METHOD

__all__ = [
    "METHODS",
    "DEFAULT_METHOD",
    "AdaptOptions",
    "adapt",
    "adapt_model",
    "target_cache",
    "tent",
    "align_head",
    "prior_shift",
    "em_prior",
    "feature_stats",
]

METHODS = ADAPT_METHODS
DEFAULT_METHOD = DEFAULT_ADAPT_METHOD
TENT_PARAMS = ("input", "bias", "last")


@dataclass
class AdaptOptions:
    """Settings of :func:`adapt` (every one has a command-line flag of ``ecgfounder adapt``)."""

    method: str = DEFAULT_METHOD
    source: list[str] | None = None  # records of the training domain (align, prior)
    epochs: int = 10  # tent and ssl: passes over the target records
    lr: float = 1e-3  # tent: Adam; ssl: AdamW
    batch_size: int = 32
    tent_params: str = "input"  # input | bias | last
    align: str = "meanvar"  # meanvar | coral
    prior: str = "conservative"  # conservative (interval end nearest zero) | point (the EM estimate)
    objective: str = "contrastive"  # ssl
    seed: int = 0
    lead: str | None = None  # the record channel fed to a single-lead model
    workers: int = 1
    cache_dir: str = ".ecgfounder-cache"
    device: str | None = None
    progress: bool = False
    log: Callable[[str], None] | None = field(default=None, repr=False)

    def steps(self) -> list[str]:
        steps = [s.strip() for s in self.method.split("+") if s.strip()]
        bad = [s for s in steps if s not in METHODS]
        if not steps or bad:
            raise ECGFounderError(
                f"unknown adaptation method {'+'.join(bad) or repr(self.method)}: one of "
                f"{', '.join(METHODS)}, or several joined by '+'"
            )
        if self.tent_params not in TENT_PARAMS:
            raise ECGFounderError(f"tent_params must be one of {', '.join(TENT_PARAMS)}")
        if self.prior not in ("conservative", "point"):
            raise ECGFounderError("prior must be conservative or point")
        if self.align not in ("meanvar", "coral"):
            raise ECGFounderError("align must be meanvar or coral")
        if "align" in steps and not self.source:
            raise ECGFounderError("method 'align' needs records of the training domain: give --source")
        return steps


# ------------------------------------------------------------------------------------ windows


def target_cache(inputs: Sequence[str], contract: Any, opts: AdaptOptions) -> tuple[WindowCache, list[str]]:
    """The prepared windows of ``inputs`` (files, folders, globs, manifests, URLs), cached like
    training data; and the record keys (unusable records are logged and left out)."""
    from ..io.sources import expand_inputs

    keys = [s.key for s in expand_inputs(list(inputs))]
    if not keys:
        raise ECGFounderError(f"no ECG inputs found in {', '.join(list(inputs)[:5])}")
    man = Manifest(
        keys,
        np.full(len(keys), -1, dtype=np.int64),
        ["_"],
        "multiclass",
        assign_splits(len(keys), seed=0, val_fraction=0.0, test_fraction=0.0),
    )
    cache = WindowCache.build(
        man,
        contract,
        opts.cache_dir,
        stride_s=None,
        lead=opts.lead,
        workers=opts.workers,
        progress=opts.progress,
        log=opts.log,
    )
    if cache.errors and opts.log is not None:
        opts.log(f"{len(cache.errors)} of {len(keys)} records unusable (named above); adapting on the rest")
    return cache, keys


def _batches(windows: Any, batch: int, order: np.ndarray | None = None):
    idx = np.arange(len(windows)) if order is None else order
    for a in range(0, len(idx), batch):
        yield torch.from_numpy(np.array(windows[np.sort(idx[a : a + batch])], dtype=np.float32))


@torch.no_grad()
def feature_stats(model: nn.Module, windows: Any, batch: int = 64, device: str = "cpu") -> dict[str, Any]:
    """Mean, standard deviation, covariance of the pooled embedding and the mean output
    probabilities over ``windows``."""
    model.eval()
    feats, probs = [], []
    for x in _batches(windows, batch):
        f = model.forward_features(x.to(device)).float()  # type: ignore[operator]
        feats.append(f.cpu())
        probs.append(_activate(model, model.forward_head(f)).cpu())  # type: ignore[operator]
    f = torch.cat(feats).double()
    return {
        "n": len(f),
        "mean": f.mean(0),
        "std": f.std(0).clamp_min(1e-6),
        "cov": torch.cov(f.T) if len(f) > 1 else torch.eye(f.shape[1], dtype=torch.float64),
        "probs": torch.cat(probs).double(),
    }


def _task(model: nn.Module) -> str:
    info = getattr(model, "info", None)
    task = getattr(info, "task", None)
    if task not in ("multiclass", "multilabel"):
        raise ECGFounderError(f"only classifiers can be adapted without labels (this model's task: {task})")
    return task


def _activate(model: nn.Module, logits: torch.Tensor) -> torch.Tensor:
    return torch.softmax(logits, 1) if _task(model) == "multiclass" else torch.sigmoid(logits)


# ------------------------------------------------------------------------------------ methods


def _tent_parameters(model: nn.Module, which: str) -> list[nn.Parameter]:
    if which != "bias" and not hasattr(model, "first_conv" if which == "input" else "stage_list"):
        raise ECGFounderError(f"tent_params {which!r} needs a Net1D (use tent_params: bias)")
    if which == "input":
        params = list(model.first_conv.parameters())  # type: ignore[attr-defined]
    elif which == "bias":
        params = [p for n, p in model.named_parameters() if n.endswith("bias") and not n.startswith("dense")]
    else:
        params = list(model.stage_list[-1].parameters())  # type: ignore[attr-defined]
    if not params:
        raise ECGFounderError(f"the model has no {which!r} parameters to adapt")
    return params


def tent(
    model: nn.Module,
    windows: Any,
    *,
    params: str = "input",
    epochs: int = 2,
    lr: float = 1e-3,
    batch_size: int = 32,
    seed: int = 0,
    device: str = "cpu",
) -> dict[str, Any]:
    """Entropy minimisation of ``params`` on ``windows`` (in place); the mean entropy before and after."""
    task = _task(model)
    for p in model.parameters():
        p.requires_grad_(False)
    trainable = _tent_parameters(model, params)
    for p in trainable:
        p.requires_grad_(True)
    opt = torch.optim.Adam(trainable, lr=lr)

    def entropy(logits: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        if task == "multiclass":
            return -(torch.softmax(logits, 1) * torch.log_softmax(logits, 1)).sum(1)
        p = torch.sigmoid(logits)
        return -(p * F.logsigmoid(logits) + (1 - p) * F.logsigmoid(-logits)).mean(1)

    def mean_entropy() -> float:
        with torch.no_grad():
            return float(torch.cat([entropy(model(x.to(device))) for x in _batches(windows, 64)]).mean())

    model.eval()  # no BatchNorm statistics or dropout to switch: the network as it predicts
    before = mean_entropy()
    rng = np.random.default_rng([seed, 31])
    steps = 0
    for _ in range(epochs):
        order = rng.permutation(len(windows))
        for x in _batches(windows, batch_size, order):
            if len(x) < 2:
                continue
            loss = entropy(model(x.to(device))).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
    for p in model.parameters():
        p.requires_grad_(True)
    return {
        "params": params,
        "n_parameters": int(sum(p.numel() for p in trainable)),
        "steps": steps,
        "entropy_before": round(before, 5),
        "entropy_after": round(mean_entropy(), 5),
    }


def align_head(
    model: nn.Module, target: dict[str, Any], source: dict[str, Any], how: str = "meanvar"
) -> None:
    """Fold the affine map that moves target embeddings onto the source statistics into the head:
    ``head(A f + c)`` = ``head'(f)`` with ``W' = W A``, ``b' = b + W c``."""
    dense = model.get_classifier()  # type: ignore[attr-defined]
    if not isinstance(dense, nn.Linear):
        raise ECGFounderError("feature alignment needs a linear head")
    mu_t, mu_s = target["mean"], source["mean"]
    if how == "meanvar":
        a = torch.diag(source["std"] / target["std"])
    else:  # CORAL: C_s^1/2 C_t^-1/2, both shrunk towards their diagonal (few target records)
        a = _sqrtm(_shrink(source["cov"], source["n"]), 0.5) @ _sqrtm(
            _shrink(target["cov"], target["n"]), -0.5
        )
    c = mu_s - a @ mu_t
    w = dense.weight.data.double()
    dense.bias.data.copy_((dense.bias.data.double() + w @ c).to(dense.bias.dtype))
    dense.weight.data.copy_((w @ a).to(dense.weight.dtype))


def _shrink(cov: torch.Tensor, n: int) -> torch.Tensor:
    d = cov.shape[0]
    lam = min(1.0, d / max(n, 1))
    return (1 - lam) * cov + lam * torch.diag(torch.diag(cov)) + 1e-6 * torch.eye(d, dtype=cov.dtype)


def _sqrtm(m: torch.Tensor, power: float) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh(m)
    return vecs @ torch.diag(vals.clamp_min(1e-9) ** power) @ vecs.T


def em_prior(probs: torch.Tensor, source_prior: torch.Tensor, iters: int = 1000) -> torch.Tensor:
    """The target's class priors by EM (Saerens et al. 2002): posteriors re-weighted by the prior
    ratio, the prior the mean of the re-weighted posteriors, until it no longer moves."""
    p, ps = probs.double(), source_prior.double().clamp_min(1e-6)
    pt = ps.clone()
    for _ in range(iters):
        post = p * (pt / ps)
        new = (post / post.sum(1, keepdim=True)).mean(0)
        if torch.allclose(new, pt, atol=1e-8):
            return new
        pt = new
    return pt


def prior_shift(
    model: nn.Module,
    target_probs: torch.Tensor,
    source_prior: torch.Tensor,
    *,
    groups: np.ndarray | None = None,
    n_boot: int = 200,
    seed: int = 0,
    conservative: bool = True,
) -> dict[str, Any]:
    """Label-shift correction folded into the head's biases: ``log(target prior / source prior)``
    per class, the target prior estimated by EM from the model's outputs on the target.

    Conservative: the EM is repeated on ``n_boot`` bootstrap resamples of the target (of its
    records when ``groups`` gives each window's record), and each class is moved by the end of its
    95% interval of the log ratio nearest zero: not at all where the interval holds zero (a few
    hundred records of the training domain itself then leave the model as it was), and no further
    than the data support (``conservative=False``: by the EM estimate itself). A prior below
    half a window, ``0.5 / n``, is raised to it (a class absent from n windows is rare there,
    not impossible)."""
    if _task(model) != "multiclass":
        raise ECGFounderError("prior correction applies to one-of-N (multiclass) models")
    p = target_probs.double()
    ps = source_prior.double().clamp_min(1e-6)
    ps = ps / ps.sum()
    floor = 0.5 / len(p)

    def log_ratio(sample: torch.Tensor) -> torch.Tensor:
        pt = em_prior(sample, ps).clamp_min(floor)
        return torch.log(pt / pt.sum() / ps)

    point = log_ratio(p)
    rng = np.random.default_rng([seed, 17])
    units = np.arange(len(p)) if groups is None else np.unique(groups)
    members = None if groups is None else {g: np.flatnonzero(groups == g) for g in units}
    boots = []
    for _ in range(n_boot):
        pick = rng.choice(units, size=len(units), replace=True)
        idx = pick if members is None else np.concatenate([members[g] for g in pick])
        boots.append(log_ratio(p[torch.from_numpy(idx)]))
    b = torch.stack(boots)
    lo, hi = torch.quantile(b, 0.025, dim=0), torch.quantile(b, 0.975, dim=0)
    shift = torch.where(lo > 0, lo, torch.where(hi < 0, hi, torch.zeros_like(lo))) if conservative else point
    dense = model.get_classifier()  # type: ignore[attr-defined]
    dense.bias.data.add_(shift.to(dense.bias.dtype))
    target = ps * torch.exp(point)
    return {
        "source_prior": [round(float(v), 5) for v in ps],
        "target_prior": [round(float(v), 5) for v in target / target.sum()],
        "log_ratio_ci": [[round(float(a), 4), round(float(z), 4)] for a, z in zip(lo, hi)],
        "bias_shift": [round(float(v), 5) for v in shift],
        "bootstrap": n_boot,
        "conservative": conservative,
    }


def _ssl(
    model: nn.Module, inputs: Sequence[str], opts: AdaptOptions, device: str, n_records: int
) -> dict[str, Any]:
    from .ssl import pretrain, pretrain_config

    with tempfile.TemporaryDirectory(prefix="ecgfounder-adapt-") as tmp:
        start = Path(tmp) / "start.safetensors"
        save_model(model, start)
        run = pretrain(
            pretrain_config(
                init=str(start),
                inputs=list(inputs),
                objective=opts.objective,
                epochs=opts.epochs,
                lr=opts.lr,
                batch_size=max(2, min(opts.batch_size, 64, n_records)),
                lead=opts.lead,
                val_fraction=0.0,
                warmup_epochs=0.0,
                seed=opts.seed,
                workers=opts.workers,
                cache_dir=opts.cache_dir,
                device=device,
                output_dir=str(Path(tmp) / "run"),
                progress=opts.progress,
            )
        )
        tuned = load_model(run / "last.safetensors")
    model.load_state_dict(tuned.state_dict())
    return {"objective": opts.objective}


# ------------------------------------------------------------------------------------ driver


def _ids_hash(keys: Sequence[str]) -> str:
    """A digest of the records' stable ids (not their paths: the same records elsewhere match)."""
    from ..records import record_ids

    return hashlib.sha256("\n".join(sorted(record_ids(keys))).encode()).hexdigest()[:16]


def adapt_model(model: nn.Module, inputs: Sequence[str], opts: AdaptOptions | None = None) -> nn.Module:
    """Adapt ``model`` (in place, also returned) to the records ``inputs`` as ``opts`` says; the
    steps are appended to ``model.info.provenance['adaptation']``."""
    opts = opts or AdaptOptions()
    steps = opts.steps()
    log = opts.log or (lambda _msg: None)
    info = model.info  # type: ignore[attr-defined]
    if info is None or info.contract is None:
        raise ECGFounderError("the model carries no input contract to prepare the target records with")
    _task(model)
    device = opts.device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(opts.seed)
    model.to(device)
    cache, keys = target_cache(inputs, info.contract, opts)
    n_used = len(keys) - len(cache.errors)
    log(f"target: {n_used} records, {len(cache.windows)} windows")
    source_cache = None
    if opts.source:
        source_cache, _ = target_cache(opts.source, info.contract, opts)
    history = list(info.provenance.get("adaptation", []))
    for step in steps:
        record: dict[str, Any] = {"method": step}
        if step == "tent":
            record.update(
                tent(
                    model,
                    cache.windows,
                    params=opts.tent_params,
                    epochs=opts.epochs,
                    lr=opts.lr,
                    batch_size=opts.batch_size,
                    seed=opts.seed,
                    device=device,
                )
            )
        elif step == "align":
            assert source_cache is not None
            src = feature_stats(model, source_cache.windows, device=device)
            align_head(model, feature_stats(model, cache.windows, device=device), src, opts.align)
            record.update({"align": opts.align, "source_windows": src["n"]})
        elif step == "prior":
            if source_cache is not None:
                prior = feature_stats(model, source_cache.windows, device=device)["probs"].mean(0)
                record["source_prior_from"] = f"{len(source_cache.windows)} source windows"
            elif info.provenance.get("output_prior"):
                prior = torch.tensor(info.provenance["output_prior"], dtype=torch.float64)
                record["source_prior_from"] = "the model's output_prior"
            else:
                raise ECGFounderError(
                    "method 'prior' needs the model's output prior on its training data: this model "
                    "carries none (output_prior), so give --source with records of the training domain"
                )
            tgt = feature_stats(model, cache.windows, device=device)
            groups = np.repeat(np.arange(len(cache)), cache.count)
            record.update(
                prior_shift(
                    model,
                    tgt["probs"],
                    prior,
                    groups=groups,
                    seed=opts.seed,
                    conservative=opts.prior == "conservative",
                )
            )
        else:
            record.update(_ssl(model, inputs, opts, device, n_used))
        if step in ("tent", "ssl"):
            record.update({"epochs": opts.epochs, "lr": opts.lr})
        record.update(
            {
                "records": n_used,
                "records_sha256": _ids_hash(keys),
                "data": [str(s) for s in list(inputs)[:20]],
                "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "seed": opts.seed,
            }
        )
        if opts.source:
            record["source"] = [str(s) for s in opts.source[:20]]
        history.append(record)
        log(
            f"adapted: {step} "
            + ", ".join(f"{k}={v}" for k, v in record.items() if k not in ("data", "source"))
        )
    info.provenance["adaptation"] = history
    model.to("cpu")
    model.eval()
    return model


def adapt(
    model: str | Path | nn.Module,
    inputs: Sequence[str],
    out: str | Path,
    opts: AdaptOptions | None = None,
    *,
    overwrite: bool = False,
) -> Path:
    """Load ``model`` (a registered name or a file), adapt it to ``inputs`` and save it to ``out``
    (our checkpoint format: contract, labels, thresholds and the adaptation in its provenance).
    An existing ``out`` is refused unless ``overwrite``."""
    if Path(out).exists() and not overwrite:
        raise ECGFounderError(f"{out} exists; choose another file or overwrite it (--overwrite)")
    (opts or AdaptOptions()).steps()
    net = load_model(str(model)) if isinstance(model, (str, Path)) else model
    adapt_model(net, inputs, opts)
    save_model(
        net, out, provenance={"adapted_from": str(model) if not isinstance(model, nn.Module) else None}
    )
    return Path(out)


def options_dict(opts: AdaptOptions) -> dict[str, Any]:
    """``opts`` as plain values (the log function left out)."""
    d = asdict(opts)
    d.pop("log", None)
    return d
