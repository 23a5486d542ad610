"""HuBERT-ECG (Coppola et al., medRxiv 2024, "HuBERT-ECG as a self-supervised foundation model for
broad and scalable cardiac applications"), written from the paper and the HuBERT architecture
so that the released Hugging Face weights (``Edoardo-BS/hubert-ecg-{small,base,large}``) load
strictly.

The released model reads 5 s of 12 leads at 100 Hz as ONE sequence: the leads one after the other
(I first), 6,000 samples. A stack of 1-D convolutions (the first with a GroupNorm of one group per
channel) turns it into frames, a LayerNorm and a linear projection into the model width, a
grouped, weight-normalised convolution adds relative position, and post-norm transformer layers
follow. The embedding is the mean over frames of the last layer (as upstream's classifier pools).

Our input is ``(B, 12, 500)`` like every model here; the network lays the leads end to end itself.
The ``hubert-ecg`` recipe prepares it exactly as upstream: FIR band-pass 0.05-47 Hz (order 0.3 s,
zero phase) at the recording's rate, FFT resampling to 500 Hz, each lead scaled to [-1, 1] over the
record, then per 5 s window the leads laid end to end and decimated by 5 (``scipy.signal.decimate``,
order-8 Chebyshev, zero phase) across the lead boundaries, as upstream's data set does.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .heads import LinearHead, linear_head

__all__ = [
    "HuBERTECGConfig",
    "HuBERTECG",
    "HUBERT_ECG_PRESETS",
    "infer_hubert_ecg_config",
    "filter_hubert_ecg_state",
    "PostNormEncoder",
    "FeatureEncoder",
    "FeatureProjection",
    "Wav2Vec2Encoder",
    "Wav2Vec2Config",
    "wav2vec2_shapes",
]


@dataclass(frozen=True)
class Wav2Vec2Config:
    """The wav2vec 2.0 family's network: convolutions (``conv_dim``, ``conv_kernel``,
    ``conv_stride``), a transformer of ``layers`` x ``heads``, ``n_classes`` outputs of a linear
    head on the pooled frames (0: none)."""

    in_channels: int = 12
    n_classes: int = 0
    conv_dim: tuple[int, ...] = (512, 512, 512, 512, 512)
    conv_kernel: tuple[int, ...] = (10, 3, 3, 2, 2)
    conv_stride: tuple[int, ...] = (4, 2, 2, 2, 2)
    conv_bias: bool = False
    hidden_size: int = 512
    layers: int = 8
    heads: int = 8
    intermediate_size: int = 2048
    pos_conv_kernel: int = 128
    pos_conv_groups: int = 16
    layer_norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        for name in ("conv_dim", "conv_kernel", "conv_stride"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        if not len(self.conv_dim) == len(self.conv_kernel) == len(self.conv_stride):
            raise ValueError("conv_dim, conv_kernel and conv_stride must have the same length")
        if self.hidden_size % self.heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not a multiple of heads {self.heads}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Any:
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})

    def replace(self, **changes: Any) -> Any:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class HuBERTECGConfig(Wav2Vec2Config):
    """HuBERT-ECG: ``in_channels`` leads of ``lead_samples`` samples each, laid end to end."""

    lead_samples: int = 500


#: the released sizes (their ``config.json``: the convolutions are the same for all three)
HUBERT_ECG_PRESETS: dict[str, HuBERTECGConfig] = {
    "small": HuBERTECGConfig(hidden_size=512, layers=8, heads=8, intermediate_size=2048),
    "base": HuBERTECGConfig(hidden_size=768, layers=12, heads=12, intermediate_size=3072),
    "large": HuBERTECGConfig(hidden_size=1024, layers=16, heads=16, intermediate_size=4096),
}


class _ConvLayer(nn.Module):
    def __init__(self, c_in: int, c_out: int, k: int, s: int, bias: bool, group_norm: bool) -> None:
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, k, stride=s, bias=bias)
        if group_norm:
            self.layer_norm = nn.GroupNorm(c_out, c_out, affine=True)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        if hasattr(self, "layer_norm"):
            x = self.layer_norm(x)
        return F.gelu(x)


class FeatureEncoder(nn.Module):
    """wav2vec 2.0's convolutional frames: GroupNorm (one group per channel) after the first
    convolution only ("default" mode), GELU after each."""

    def __init__(
        self, c_in: int, dims: tuple[int, ...], kernels: tuple[int, ...], strides: tuple[int, ...], bias: bool
    ):
        super().__init__()
        layers = []
        for i, (d, k, s) in enumerate(zip(dims, kernels, strides)):
            layers.append(_ConvLayer(c_in if i == 0 else dims[i - 1], d, k, s, bias, group_norm=i == 0))
        self.conv_layers = nn.ModuleList(layers)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.conv_layers:
            x = layer(x)
        return x


class FeatureProjection(nn.Module):
    """LayerNorm over the frames' channels, then a linear map to the transformer's width."""

    def __init__(self, c_in: int, hidden: int, eps: float) -> None:
        super().__init__()
        self.layer_norm = nn.LayerNorm(c_in, eps=eps)
        self.projection = nn.Linear(c_in, hidden)

    def forward(self, x: Tensor) -> Tensor:
        return self.projection(self.layer_norm(x))


class _PosConv(nn.Module):
    """Grouped convolution with weight normalisation over the kernel axis (``weight_g`` of shape
    (1, 1, K), ``weight_v`` the direction), the last output dropped when K is even, GELU."""

    def __init__(self, hidden: int, kernel: int, groups: int) -> None:
        super().__init__()
        self.conv = nn.Module()
        self.conv.weight_g = nn.Parameter(torch.ones(1, 1, kernel))
        self.conv.weight_v = nn.Parameter(torch.randn(hidden, hidden // groups, kernel) * 0.02)
        self.conv.bias = nn.Parameter(torch.zeros(hidden))
        self.kernel = kernel
        self.groups = groups

    def forward(self, x: Tensor) -> Tensor:  # x: (B, T, C)
        v = self.conv.weight_v
        w = self.conv.weight_g * v / v.norm(dim=(0, 1), keepdim=True)
        y = F.conv1d(x.transpose(1, 2), w, self.conv.bias, padding=self.kernel // 2, groups=self.groups)
        if self.kernel % 2 == 0:
            y = y[..., :-1]
        return F.gelu(y).transpose(1, 2)


class _Attention(nn.Module):
    def __init__(self, hidden: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(hidden, hidden)
        self.k_proj = nn.Linear(hidden, hidden)
        self.v_proj = nn.Linear(hidden, hidden)
        self.out_proj = nn.Linear(hidden, hidden)

    def forward(self, x: Tensor) -> Tensor:
        b, t, c = x.shape

        def split(y: Tensor) -> Tensor:
            return y.reshape(b, t, self.heads, c // self.heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(
            split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))
        )
        return self.out_proj(out.transpose(1, 2).reshape(b, t, c))


class _FeedForward(nn.Module):
    def __init__(self, hidden: int, inner: int) -> None:
        super().__init__()
        self.intermediate_dense = nn.Linear(hidden, inner)
        self.output_dense = nn.Linear(inner, hidden)

    def forward(self, x: Tensor) -> Tensor:
        return self.output_dense(F.gelu(self.intermediate_dense(x)))


class _PostNormLayer(nn.Module):
    def __init__(self, hidden: int, heads: int, inner: int, eps: float) -> None:
        super().__init__()
        self.attention = _Attention(hidden, heads)
        self.layer_norm = nn.LayerNorm(hidden, eps=eps)
        self.feed_forward = _FeedForward(hidden, inner)
        self.final_layer_norm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        x = self.layer_norm(x + self.attention(x))
        return self.final_layer_norm(x + self.feed_forward(x))


class PostNormEncoder(nn.Module):
    """wav2vec 2.0 / HuBERT's transformer (``layer_norm_first`` off): relative-position
    convolution added, LayerNorm, then post-norm layers. Input and output ``(B, T, hidden)``."""

    def __init__(
        self, hidden: int, layers: int, heads: int, inner: int, pos_kernel: int, pos_groups: int, eps: float
    ):
        super().__init__()
        self.pos_conv_embed = _PosConv(hidden, pos_kernel, pos_groups)
        self.layer_norm = nn.LayerNorm(hidden, eps=eps)
        self.layers = nn.ModuleList(_PostNormLayer(hidden, heads, inner, eps) for _ in range(layers))

    def forward(self, x: Tensor) -> Tensor:
        x = self.layer_norm(x + self.pos_conv_embed(x))
        for layer in self.layers:
            x = layer(x)
        return x


class Wav2Vec2Encoder(LinearHead, nn.Module):
    """The wav2vec 2.0 family (HuBERT-ECG, ECG-FM): convolutional frames of ``conv_in`` input
    channels, projection, relative-position convolution, post-norm transformer, a linear head
    ``classifier``. Subclasses say how the input becomes the convolutions' input
    (:meth:`conv_input`) and how frames are pooled (:meth:`pool`)."""

    head_attr = "classifier"

    def __init__(self, config: Any, conv_in: int) -> None:
        super().__init__()
        self.config = config
        self.info: Any = None
        c = config
        self.feature_extractor = FeatureEncoder(
            conv_in, c.conv_dim, c.conv_kernel, c.conv_stride, c.conv_bias
        )
        self.feature_projection = FeatureProjection(c.conv_dim[-1], c.hidden_size, c.layer_norm_eps)
        self.encoder = PostNormEncoder(
            c.hidden_size,
            c.layers,
            c.heads,
            c.intermediate_size,
            c.pos_conv_kernel,
            c.pos_conv_groups,
            c.layer_norm_eps,
        )
        self.classifier: nn.Module = linear_head(c.hidden_size, c.n_classes)

    @property
    def num_features(self) -> int:
        return self.config.hidden_size

    def conv_input(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def pool(self, frames: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward_frames(self, x: Tensor) -> Tensor:
        """The last layer's frames ``(B, T, hidden)``."""
        feats = self.feature_extractor(self.conv_input(x)).transpose(1, 2)
        return self.encoder(self.feature_projection(feats))

    def forward_features(self, x: Tensor) -> Tensor:
        return self.pool(self.forward_frames(x))

    def layer_groups(self) -> list[list[nn.Parameter]]:
        """Input to output: convolutional frames, projection and relative position, each
        transformer layer, head."""
        stem = [
            *self.feature_extractor.parameters(),
            *self.feature_projection.parameters(),
            *self.encoder.pos_conv_embed.parameters(),
            *self.encoder.layer_norm.parameters(),
        ]
        return [
            stem,
            *[list(layer.parameters()) for layer in self.encoder.layers],
            list(self.classifier.parameters()),
        ]


class HuBERTECG(Wav2Vec2Encoder):
    """HuBERT-ECG's encoder with an optional linear head (``classifier``, as upstream's
    ``HuBERTForECGClassification`` names it). Input ``(B, leads, lead_samples)``, laid end to end
    (one input channel); the embedding is the mean frame."""

    architecture = "hubert-ecg"

    def __init__(self, config: HuBERTECGConfig) -> None:
        super().__init__(config, conv_in=1)

    def conv_input(self, x: Tensor) -> Tensor:
        c = self.config
        if x.ndim != 3 or x.shape[1:] != (c.in_channels, c.lead_samples):
            raise ValueError(
                f"HuBERT-ECG expects a (batch, {c.in_channels}, {c.lead_samples}) tensor, "
                f"got shape {tuple(x.shape)}"
            )
        return x.reshape(x.shape[0], 1, -1)

    def pool(self, frames: Tensor) -> Tensor:
        return frames.mean(dim=1)


#: upstream tensors of pre-training only (HuBERT's cluster prediction and mask embedding)
_PRETRAINING_ONLY = re.compile(
    r"^(final_proj\.|label_embedding\.|masked_spec_embed$|label_embeddings_concat$)"
)


def filter_hubert_ecg_state(state: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], list[str]]:
    """Upstream names to ours: a fine-tuned file's ``hubert_ecg.`` prefix removed, the
    positional convolution's weight norm under either of PyTorch's two namings, and the
    pre-training-only tensors (cluster projections, mask embedding) dropped and listed."""
    out: dict[str, Tensor] = {}
    dropped: list[str] = []
    for key, value in state.items():
        k = key[len("hubert_ecg.") :] if key.startswith("hubert_ecg.") else key
        k = k.replace("parametrizations.weight.original0", "weight_g").replace(
            "parametrizations.weight.original1", "weight_v"
        )
        if _PRETRAINING_ONLY.match(k):
            dropped.append(k)
            continue
        out[k] = value
    notes = (
        [f"dropped {len(dropped)} pre-training-only tensors ({', '.join(sorted(dropped)[:4])})"]
        if dropped
        else []
    )
    return out, notes


def wav2vec2_shapes(state: Mapping[str, Tensor], source: Any, what: str) -> dict[str, Any]:
    """What the tensor shapes of a wav2vec 2.0-family state dict (in our names) tell: the config
    fields except strides and heads, and the convolutions' input channels (``conv_in``)."""
    from ..errors import CheckpointError

    try:
        convs = sorted(
            (int(m.group(1)), state[k])
            for k in state
            if (m := re.match(r"^feature_extractor\.conv_layers\.(\d+)\.conv\.weight$", k))
        )
        hidden = int(state["feature_projection.projection.weight"].shape[0])
        inner = int(state["encoder.layers.0.feed_forward.intermediate_dense.weight"].shape[0])
        pos = state["encoder.pos_conv_embed.conv.weight_v"]
    except KeyError as exc:
        raise CheckpointError(source, f"not a {what} encoder: no tensor {exc}") from None
    if not convs:
        raise CheckpointError(source, f"not a {what} encoder: no feature-extractor convolutions")
    return {
        "conv_in": int(convs[0][1].shape[1]),
        "n_classes": int(state["classifier.weight"].shape[0]) if "classifier.weight" in state else 0,
        "conv_dim": tuple(int(w.shape[0]) for _, w in convs),
        "conv_kernel": tuple(int(w.shape[2]) for _, w in convs),
        "conv_bias": any(k.startswith("feature_extractor.") and k.endswith(".conv.bias") for k in state),
        "hidden_size": hidden,
        "layers": len({k.split(".")[2] for k in state if k.startswith("encoder.layers.")}),
        "intermediate_size": inner,
        "pos_conv_kernel": int(pos.shape[2]),
        "pos_conv_groups": hidden // int(pos.shape[1]),
    }


def infer_hubert_ecg_config(
    state: Mapping[str, Tensor], source: Any = "<state dict>", **overrides: Any
) -> tuple[HuBERTECGConfig, list[str]]:
    """Widths, kernels, depth and classes from tensor shapes; strides, head count and input
    length are not in the shapes: upstream's ``config.json`` beside the file says them, else the
    released models' are assumed, unless overridden."""
    shapes = wav2vec2_shapes(state, source, "HuBERT-ECG")
    shapes.pop("conv_in")
    n_conv = len(shapes["conv_dim"])
    base = HUBERT_ECG_PRESETS["small"]
    upstream = _upstream_config(source)
    strides = overrides.pop(
        "conv_stride",
        upstream.get("conv_stride")
        or (base.conv_stride if n_conv == len(base.conv_stride) else (2,) * n_conv),
    )
    hidden = shapes["hidden_size"]
    heads = overrides.pop("heads", upstream.get("num_attention_heads") or max(1, hidden // 64))
    if "layer_norm_eps" in upstream:
        overrides.setdefault("layer_norm_eps", float(upstream["layer_norm_eps"]))
    config = HuBERTECGConfig(conv_stride=strides, heads=heads, **shapes).replace(**overrides)
    told = "from the config.json beside it" if upstream else "assumed"
    return config, [
        f"HuBERT-ECG width {hidden}, {shapes['layers']} layers, {n_conv} convolutions (from tensor shapes; "
        f"strides {list(config.conv_stride)} and {config.heads} heads {told})"
    ]


def _upstream_config(source: Any) -> dict[str, Any]:
    """Upstream's ``config.json`` beside a weights file (Hugging Face layout), when it is one of
    HuBERT-ECG's: plain JSON, read for the fields shapes cannot tell (strides, heads)."""
    import json
    from pathlib import Path

    try:
        path = Path(source).with_name("config.json")
        if not path.is_file() or path.stat().st_size > 1 << 20:
            return {}
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, TypeError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("model_type") not in ("hubert_ecg", "hubert"):
        return {}
    return data
