"""ECG-FM (McKeen et al., 2024, "ECG-FM: An Open Electrocardiogram Foundation Model"): wav2vec 2.0
over the 12 leads as input channels, pretrained with W2V+CMSC+RLM on fairseq-signals. Written here
from the paper and fairseq-signals' state-dict layout, so that its files load strictly.

Four convolutions (256 channels, kernel 2, stride 2; GroupNorm after the first) turn 5 s at 500 Hz
(2,500 samples) into 156 frames; LayerNorm, a projection to 768, a grouped weight-normalised
convolution for relative position, LayerNorm and 12 post-norm transformer layers follow. The
embedding is upstream's classifier pooling: the sum over frames divided by the number of non-zero
values (the mean, where no value is exactly zero).

The ``ecg-fm`` recipe prepares a recording as fairseq-signals' ``preprocess.py`` does: linear
interpolation to 500 Hz, each lead's mean removed and divided by its standard deviation over the
whole recording (a flat lead becomes zeros), then 5 s segments.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from .hubert_ecg import FeatureEncoder, FeatureProjection, PostNormEncoder

__all__ = ["ECGFMConfig", "ECGFM", "ECG_FM_PRESET", "infer_ecg_fm_config", "filter_ecg_fm_state"]


@dataclass(frozen=True)
class ECGFMConfig:
    in_channels: int = 12
    n_samples: int = 2500
    n_classes: int = 0
    conv_dim: tuple[int, ...] = (256, 256, 256, 256)
    conv_kernel: tuple[int, ...] = (2, 2, 2, 2)
    conv_stride: tuple[int, ...] = (2, 2, 2, 2)
    conv_bias: bool = False
    hidden_size: int = 768
    layers: int = 12
    heads: int = 12
    intermediate_size: int = 3072
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
    def from_dict(cls, d: Mapping[str, Any]) -> ECGFMConfig:
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})

    def replace(self, **changes: Any) -> ECGFMConfig:
        return dataclasses.replace(self, **changes)


#: the released model (90.9M parameters: fairseq-signals' wav2vec2_cmsc defaults with in_d 12)
ECG_FM_PRESET = ECGFMConfig()


class ECGFM(nn.Module):
    """ECG-FM's encoder with an optional linear head (``proj`` upstream, ``classifier`` here).
    Input ``(B, leads, n_samples)``."""

    architecture = "ecg-fm"

    def __init__(self, config: ECGFMConfig) -> None:
        super().__init__()
        self.config = config
        self.info: Any = None
        c = config
        self.feature_extractor = FeatureEncoder(
            c.in_channels, c.conv_dim, c.conv_kernel, c.conv_stride, c.conv_bias
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
        self.classifier: nn.Module = (
            nn.Linear(c.hidden_size, c.n_classes) if c.n_classes > 0 else nn.Identity()
        )

    @classmethod
    def from_config(cls, config: ECGFMConfig) -> ECGFM:
        return cls(config)

    @property
    def num_features(self) -> int:
        return self.config.hidden_size

    def forward_frames(self, x: Tensor) -> Tensor:
        c = self.config
        if x.ndim != 3 or x.shape[1] != c.in_channels:
            raise ValueError(
                f"ECG-FM expects a (batch, {c.in_channels}, samples) tensor, got {tuple(x.shape)}"
            )
        feats = self.feature_extractor(x).transpose(1, 2)
        return self.encoder(self.feature_projection(feats))

    def forward_features(self, x: Tensor) -> Tensor:
        frames = self.forward_frames(x)
        return frames.sum(dim=1) / (frames != 0).sum(dim=1)

    def forward_head(self, features: Tensor) -> Tensor:
        return self.classifier(features)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.classifier

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

    def num_parameters(self, trainable_only: bool = True) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def reset_classifier(self, n_classes: int) -> None:
        ref = self.feature_projection.projection.weight
        self.classifier = (
            nn.Linear(self.num_features, n_classes).to(device=ref.device, dtype=ref.dtype)
            if n_classes > 0
            else nn.Identity()
        )
        self.config = self.config.replace(n_classes=n_classes)


_RENAMES = [
    (
        re.compile(r"^feature_extractor\.conv_layers\.(\d+)\.0\.(weight|bias)$"),
        r"feature_extractor.conv_layers.\1.conv.\2",
    ),
    (
        re.compile(r"^feature_extractor\.conv_layers\.0\.2\.(weight|bias)$"),
        r"feature_extractor.conv_layers.0.layer_norm.\1",
    ),
    (re.compile(r"^layer_norm\.(weight|bias)$"), r"feature_projection.layer_norm.\1"),
    (re.compile(r"^post_extract_proj\.(weight|bias)$"), r"feature_projection.projection.\1"),
    (
        re.compile(r"^conv_pos\.pos_conv\.0\.(?:parametrizations\.weight\.original0|weight_g)$"),
        "encoder.pos_conv_embed.conv.weight_g",
    ),
    (
        re.compile(r"^conv_pos\.pos_conv\.0\.(?:parametrizations\.weight\.original1|weight_v)$"),
        "encoder.pos_conv_embed.conv.weight_v",
    ),
    (re.compile(r"^conv_pos\.pos_conv\.0\.bias$"), "encoder.pos_conv_embed.conv.bias"),
    (
        re.compile(r"^encoder\.layers\.(\d+)\.self_attn\.(q|k|v|out)_proj\.(weight|bias)$"),
        r"encoder.layers.\1.attention.\2_proj.\3",
    ),
    (
        re.compile(r"^encoder\.layers\.(\d+)\.self_attn_layer_norm\.(weight|bias)$"),
        r"encoder.layers.\1.layer_norm.\2",
    ),
    (
        re.compile(r"^encoder\.layers\.(\d+)\.fc1\.(weight|bias)$"),
        r"encoder.layers.\1.feed_forward.intermediate_dense.\2",
    ),
    (
        re.compile(r"^encoder\.layers\.(\d+)\.fc2\.(weight|bias)$"),
        r"encoder.layers.\1.feed_forward.output_dense.\2",
    ),
    (
        re.compile(r"^encoder\.layers\.(\d+)\.final_layer_norm\.(weight|bias)$"),
        r"encoder.layers.\1.final_layer_norm.\2",
    ),
    (re.compile(r"^encoder\.layer_norm\.(weight|bias)$"), r"encoder.layer_norm.\1"),
    (re.compile(r"^proj\.(weight|bias)$"), r"classifier.\1"),
]
#: wav2vec 2.0 / CMSC / RLM pre-training tensors (quantiser, target projections, mask embedding)
_PRETRAINING_ONLY = re.compile(
    r"^(quantizer\.|project_q\.|final_proj\.|mask_emb$|input_quantizer\.|project_inp\.)"
)


def filter_ecg_fm_state(state: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], list[str]]:
    """fairseq-signals names to ours. A fine-tuned classifier's encoder sits under ``encoder.``
    (``encoder.feature_extractor...``, ``encoder.encoder.layers...``) with its head ``proj``."""
    finetuned = any(k.startswith("encoder.feature_extractor.") for k in state)
    out: dict[str, Tensor] = {}
    dropped: list[str] = []
    unknown: list[str] = []
    for key, value in state.items():
        k = key[len("encoder.") :] if finetuned and key.startswith("encoder.") else key
        if _PRETRAINING_ONLY.match(k):
            dropped.append(k)
            continue
        for pattern, repl in _RENAMES:
            if pattern.match(k):
                out[pattern.sub(repl, k)] = value
                break
        else:
            unknown.append(k)
            out[k] = value  # left as it is: the strict load lists it as unexpected
    notes = (
        [f"dropped {len(dropped)} pre-training-only tensors ({', '.join(sorted(dropped)[:4])})"]
        if dropped
        else []
    )
    if finetuned:
        notes.append("fairseq-signals classifier: encoder and head `proj` kept")
    return out, notes


def infer_ecg_fm_config(
    state: Mapping[str, Tensor], source: Any = "<state dict>", **overrides: Any
) -> tuple[ECGFMConfig, list[str]]:
    """Widths, kernels and depth from tensor shapes (in our names); strides and heads are not in
    the shapes: the released model's (2 and 64 dimensions per head) are assumed unless overridden."""
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
        raise CheckpointError(source, f"not an ECG-FM (wav2vec 2.0) encoder: no tensor {exc}") from None
    if not convs:
        raise CheckpointError(source, "not an ECG-FM encoder: no feature-extractor convolutions")
    layers = len({k.split(".")[2] for k in state if k.startswith("encoder.layers.")})
    heads = overrides.pop("heads", max(1, hidden // 64))
    config = ECGFMConfig(
        in_channels=int(convs[0][1].shape[1]),
        n_classes=int(state["classifier.weight"].shape[0]) if "classifier.weight" in state else 0,
        conv_dim=tuple(int(w.shape[0]) for _, w in convs),
        conv_kernel=tuple(int(w.shape[2]) for _, w in convs),
        conv_stride=overrides.pop("conv_stride", tuple(int(w.shape[2]) for _, w in convs)),
        conv_bias=any(k.startswith("feature_extractor.") and k.endswith(".conv.bias") for k in state),
        hidden_size=hidden,
        layers=layers,
        heads=heads,
        intermediate_size=inner,
        pos_conv_kernel=int(pos.shape[2]),
        pos_conv_groups=hidden // int(pos.shape[1]),
    ).replace(**overrides)
    return config, [
        f"ECG-FM width {hidden}, {layers} layers, {len(convs)} convolutions (from tensor shapes; strides "
        f"{list(config.conv_stride)} and {config.heads} heads assumed)"
    ]
