"""Attributions: which leads and which moments of a 10 s window drove one output of the model.

Three methods, written directly on PyTorch (each is a few lines; a dependency such as Captum
would pin NumPy and add nothing we need):

- ``integrated-gradients`` (Sundararajan et al., 2017): ``(x - b) * mean over a path of
  d f / d x`` from the baseline ``b`` (zeros: the mean of a z-scored window) to ``x``, with the
  Gauss-Legendre rule. *Completeness*: the attributions add up to ``f(x) - f(b)``; the
  explanation reports that sum and the gap (``completeness_gap``).
- ``gradcam`` (Selvaraju et al., 2017) on the last stage of the backbone: channel weights are the
  time-mean of the gradients, the map is ``relu(sum_c w_c A_c)`` interpolated to the input
  length. It has no lead resolution: every lead gets the same map (``lead_importance`` is flat).
- ``occlusion`` (Zeiler and Fergus, 2014): a window of ``occlusion_s`` seconds of one lead is
  replaced by the baseline, sliding by half a window; the drop of ``f`` is spread over the
  occluded samples and averaged. Where occluding changes nothing, the attribution is exactly 0.

``f`` is the model's logit for the label (``target="logit"``, default: additive, so
completeness is exact) or its probability (``target="probability"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..errors import ECGFounderError

__all__ = ["METHODS", "Explanation", "explain", "explain_window"]

METHODS = ("integrated-gradients", "gradcam", "occlusion")
Method = Literal["integrated-gradients", "gradcam", "occlusion"]


@dataclass
class Explanation:
    """Attributions over (leads, samples) of one prepared window for one label."""

    values: np.ndarray  # (leads, samples), in units of f
    leads: list[str]
    fs: float
    start_s: float  # where the window starts in the record
    label: str
    method: str
    target: str  # "logit" or "probability"
    score: float  # f(x)
    baseline_score: float | None  # f(baseline) (integrated gradients, occlusion)
    record: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def lead_importance(self) -> dict[str, float]:
        """Share of the absolute attribution per lead (sums to 1)."""
        a = np.abs(self.values).sum(axis=1)
        total = float(a.sum()) or 1.0
        return {lead: float(v) / total for lead, v in zip(self.leads, a)}

    def to_dict(self, max_points: int = 1000) -> dict[str, Any]:
        """JSON-ready summary; the attribution curve per lead is decimated to ``max_points``."""
        step = max(1, int(np.ceil(self.values.shape[1] / max_points)))
        n = self.values.shape[1] // step * step
        curve = self.values[:, :n].reshape(len(self.leads), -1, step).mean(-1)
        return {
            "record": self.record,
            "label": self.label,
            "method": self.method,
            "target": self.target,
            "score": self.score,
            "baseline_score": self.baseline_score,
            "start_s": self.start_s,
            "fs": self.fs / step,
            "lead_importance": self.lead_importance,
            "values": {lead: [round(float(v), 6) for v in row] for lead, row in zip(self.leads, curve)},
            **({"details": self.details} if self.details else {}),
        }


def _pick(logits: Any, model: Any, index: int, target: str) -> Any:
    """The explained quantity from logits: the label's logit, or its probability by the task."""
    import torch

    if target == "logit":
        return logits[:, index]
    info = getattr(model, "info", None)
    if info is None:
        return torch.sigmoid(logits[:, index])
    return info.activate(logits)[:, index]


def _score_fn(model: Any, index: int, target: str):
    return lambda x: _pick(model(x), model, index, target)


def explain_window(
    model: Any,
    window: np.ndarray,
    index: int,
    *,
    method: Method = "integrated-gradients",
    target: Literal["logit", "probability"] = "logit",
    steps: int = 64,
    occlusion_s: float = 0.5,
    fs: float = 500.0,
    batch_size: int = 32,
    baseline: np.ndarray | None = None,
) -> tuple[np.ndarray, float, float | None, dict[str, Any]]:
    """Attributions (leads, samples) of output ``index`` for one prepared window; also f(x),
    f(baseline) and method details. ``model`` maps (B, leads, samples) to logits."""
    import torch

    if method not in METHODS:
        raise ECGFounderError(f"method must be one of {', '.join(METHODS)} (got {method!r})")
    if target not in ("logit", "probability"):
        raise ECGFounderError(f"target must be logit or probability (got {target!r})")
    model = model.eval()
    x = torch.as_tensor(np.asarray(window, np.float32))[None]
    b = torch.zeros_like(x) if baseline is None else torch.as_tensor(np.asarray(baseline, np.float32))[None]
    f = _score_fn(model, index, target)
    with torch.no_grad():
        fx, fb = float(f(x)), float(f(b))
    details: dict[str, Any] = {}
    if method == "integrated-gradients":
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        alphas = torch.as_tensor((nodes + 1) / 2, dtype=torch.float32)
        weights_t = torch.as_tensor(weights / 2, dtype=torch.float32)
        grad_sum = torch.zeros_like(x)
        for i in range(0, steps, batch_size):
            a = alphas[i : i + batch_size].view(-1, 1, 1)
            path = (b + a * (x - b)).requires_grad_(True)
            out = f(path)
            (g,) = torch.autograd.grad(out.sum(), path)
            grad_sum += (g * weights_t[i : i + batch_size].view(-1, 1, 1)).sum(0, keepdim=True)
        values = ((x - b) * grad_sum)[0].detach().numpy()
        details = {"steps": steps, "completeness_gap": float(values.sum() - (fx - fb))}
    elif method == "gradcam":
        if not hasattr(model, "forward_backbone"):
            raise ECGFounderError("gradcam needs a Net1D-style model (forward_backbone)")
        acts = model.forward_backbone(x.clone().requires_grad_(True))
        acts.retain_grad()
        feats = acts.mean(-1)
        out = _pick(model.forward_head(feats), model, index, target)
        (g,) = torch.autograd.grad(out.sum(), acts)
        w = g.mean(-1, keepdim=True)
        cam = torch.relu((w * acts).sum(1, keepdim=True))
        cam = torch.nn.functional.interpolate(cam, size=x.shape[-1], mode="linear", align_corners=False)
        values = cam[0].detach().numpy().repeat(x.shape[1], 0)
        details = {"layer": "last stage", "resolution_samples": int(x.shape[-1] // acts.shape[-1])}
        fb = None
    else:
        width = max(1, int(round(occlusion_s * fs)))
        step = max(1, width // 2)
        n_leads, n = x.shape[1], x.shape[-1]
        starts = list(range(0, max(1, n - width) + 1, step))
        if starts[-1] + width < n:
            starts.append(n - width)
        jobs = [(lead, s) for lead in range(n_leads) for s in starts]
        total = np.zeros((n_leads, n))
        count = np.zeros((n_leads, n))
        with torch.no_grad():
            for i in range(0, len(jobs), batch_size):
                chunk = jobs[i : i + batch_size]
                batch = x.repeat(len(chunk), 1, 1)
                for k, (lead, s) in enumerate(chunk):
                    batch[k, lead, s : s + width] = b[0, lead, s : s + width]
                drops = fx - f(batch).numpy()
                for k, (lead, s) in enumerate(chunk):
                    total[lead, s : s + width] += drops[k] / width
                    count[lead, s : s + width] += 1
        values = (total / np.maximum(count, 1)).astype(np.float32)
        details = {"window_s": width / fs, "stride_s": step / fs, "forward_passes": len(jobs)}
        fb = None
    return values.astype(np.float32), fx, fb, details


def explain(
    model: Any,
    ecg: Any,
    label: str | int,
    *,
    method: Method = "integrated-gradients",
    window: int | None = None,
    lead: str | None = None,
    target: Literal["logit", "probability"] = "logit",
    steps: int = 64,
    occlusion_s: float = 0.5,
) -> Explanation:
    """Explain ``label`` for an ECG (file path, :class:`~ecgfounder.ECGRecord` or
    :class:`~ecgfounder.PreparedECG`), prepared by the model's input contract.

    ``window``: which 10 s window of a long record (default: the one with the highest score for
    the label). ``model``: a loaded model or a registered name / model file.
    """
    import torch

    from ..io import ECGRecord, read_ecg
    from ..models import load_model
    from ..signal import PreparedECG, prepare

    spec = model if isinstance(model, str) else None
    if isinstance(model, str):
        model = load_model(model)
    info = model.info
    spec = spec or info.name or "MODEL"
    contract = info.contract
    labels: Sequence[str] = list(info.labels or [])
    if isinstance(label, int):
        index = label
        name = labels[index] if index < len(labels) else f"output_{index}"
    elif label in labels:
        index, name = labels.index(label), label
    else:
        close = [x for x in labels if label.lower() in x.lower()][:5]
        raise ECGFounderError(
            f"label {label!r} is not one of the model's labels"
            + (
                f" (did you mean: {', '.join(close)}?)"
                if close
                else f" (`ecgfounder labels {spec}` lists them)"
            )
        )
    from ..io.leads import canonical_lead

    names = list(contract.leads)
    if isinstance(ecg, PreparedECG):
        prep = ecg
    else:
        record = ecg if isinstance(ecg, ECGRecord) else read_ecg(ecg)
        prep = prepare(record, contract, lead=lead)
        if len(names) == 1:  # name the record's channel that was used, so overlays land on it
            if lead is not None:
                names = [canonical_lead(lead) or lead]
            elif names[0] not in record.leads and record.n_leads == 1:
                names = [record.leads[0]]
    windows = prep.windows
    if window is None:
        f = _score_fn(model.eval(), index, target)
        with torch.no_grad():
            window = int(torch.argmax(f(torch.as_tensor(windows))).item()) if len(windows) > 1 else 0
    if not 0 <= window < len(windows):
        raise ECGFounderError(f"window {window} out of range: the record has {len(windows)}")
    values, fx, fb, details = explain_window(
        model,
        windows[window],
        index,
        method=method,
        target=target,
        steps=steps,
        occlusion_s=occlusion_s,
        fs=contract.fs,
    )
    details["window"] = window
    details["record_lead"] = names[0] if len(names) == 1 else None
    rec = prep.record
    return Explanation(
        values=values,
        leads=names,
        fs=contract.fs,
        start_s=float(prep.starts_s[window]),
        label=name,
        method=method,
        target=target,
        score=fx,
        baseline_score=fb,
        record=rec.record_id or str(rec.source or ""),
        details=details,
    )
