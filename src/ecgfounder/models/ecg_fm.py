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

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from .hubert_ecg import Wav2Vec2Config, Wav2Vec2Encoder, wav2vec2_shapes

__all__ = ["ECGFMConfig", "ECGFM", "ECG_FM_PRESET", "infer_ecg_fm_config", "filter_ecg_fm_state"]


@dataclass(frozen=True)
class ECGFMConfig(Wav2Vec2Config):
    """ECG-FM: ``in_channels`` leads as the convolutions' input channels, ``n_samples`` each;
    fairseq-signals' defaults (four 256-channel convolutions of kernel and stride 2, 768 wide,
    12 layers of 12 heads)."""

    n_samples: int = 2500
    conv_dim: tuple[int, ...] = (256, 256, 256, 256)
    conv_kernel: tuple[int, ...] = (2, 2, 2, 2)
    conv_stride: tuple[int, ...] = (2, 2, 2, 2)
    hidden_size: int = 768
    layers: int = 12
    heads: int = 12
    intermediate_size: int = 3072


#: the released model (90.9M parameters: fairseq-signals' wav2vec2_cmsc defaults with in_d 12)
ECG_FM_PRESET = ECGFMConfig()


class ECGFM(Wav2Vec2Encoder):
    """ECG-FM's encoder with an optional linear head (``proj`` upstream, ``classifier`` here).
    Input ``(B, leads, n_samples)``, the leads as input channels; the embedding is upstream's
    classifier pooling (sum over frames / number of non-zero values)."""

    architecture = "ecg-fm"

    def __init__(self, config: ECGFMConfig) -> None:
        super().__init__(config, conv_in=config.in_channels)

    def conv_input(self, x: Tensor) -> Tensor:
        c = self.config
        if x.ndim != 3 or x.shape[1] != c.in_channels:
            raise ValueError(
                f"ECG-FM expects a (batch, {c.in_channels}, samples) tensor, got {tuple(x.shape)}"
            )
        return x

    def pool(self, frames: Tensor) -> Tensor:
        return frames.sum(dim=1) / (frames != 0).sum(dim=1)


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
    the shapes: the released model's (strides equal to the kernels, 64 dimensions per head) are
    assumed unless overridden."""
    shapes = wav2vec2_shapes(state, source, "ECG-FM (wav2vec 2.0)")
    conv_in = shapes.pop("conv_in")
    heads = overrides.pop("heads", max(1, shapes["hidden_size"] // 64))
    strides = overrides.pop("conv_stride", shapes["conv_kernel"])
    config = ECGFMConfig(in_channels=conv_in, conv_stride=strides, heads=heads, **shapes).replace(**overrides)
    return config, [
        f"ECG-FM width {config.hidden_size}, {config.layers} layers, {len(config.conv_dim)} convolutions "
        f"(from tensor shapes; strides {list(config.conv_stride)} and {config.heads} heads assumed)"
    ]
