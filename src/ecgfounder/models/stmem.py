"""ST-MEM's encoder (Na et al., ICLR 2024, "Guiding Masked Representation Learning to Capture
Spatio-Temporal Relationship of Electrocardiogram"), written from the paper and the released
code's state-dict layout so that the released ``encoder.pth`` loads strictly.

A ViT over each lead's patches: every lead is cut into patches of ``patch_size`` samples, each
patch normalised and embedded; a positional embedding per patch position, a SEP token at both
ends of every lead, a learned embedding per lead, and pre-norm transformer blocks over all
(lead, patch) tokens at once. The embedding is the mean over every lead's patch tokens (SEP
tokens dropped), layer-normalised.

Input contract of the released encoder: 12 leads (I, II, III, aVR, aVL, aVF, V1-V6), 250 Hz,
2,250 samples (9 s), preprocessed by the ``st-mem`` recipe (5th-order Butterworth high-pass
0.67 Hz and low-pass 40 Hz, ``sosfiltfilt``; one mean and standard deviation over the window).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .heads import LinearHead, linear_head

__all__ = ["STMEMConfig", "STMEM", "STMEM_PRESETS", "infer_stmem_config", "filter_stmem_state"]


@dataclass(frozen=True)
class STMEMConfig:
    """``seq_len`` samples in ``seq_len / patch_size`` patches per lead; ``in_channels`` leads (the
    lead embeddings); a ``width``-wide transformer of ``depth`` blocks; ``n_classes`` outputs of a
    linear head (0: none, ``forward`` returns the embedding)."""

    seq_len: int = 2250
    patch_size: int = 75
    in_channels: int = 12
    n_classes: int = 0
    width: int = 768
    depth: int = 12
    mlp_dim: int = 3072
    heads: int = 12
    dim_head: int = 64
    qkv_bias: bool = True

    def __post_init__(self) -> None:
        if self.seq_len % self.patch_size:
            raise ValueError(f"seq_len {self.seq_len} is not a multiple of patch_size {self.patch_size}")
        if min(self.seq_len, self.patch_size, self.in_channels, self.width, self.depth, self.heads) < 1:
            raise ValueError(f"invalid ST-MEM configuration {self}")

    @property
    def n_patches(self) -> int:
        return self.seq_len // self.patch_size

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> STMEMConfig:
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})

    def replace(self, **changes: Any) -> STMEMConfig:
        return dataclasses.replace(self, **changes)


#: the released sizes (``st_mem_vit_small`` / ``st_mem_vit_base`` upstream)
STMEM_PRESETS: dict[str, STMEMConfig] = {
    "small": STMEMConfig(width=384, depth=12, heads=6, mlp_dim=1536),
    "base": STMEMConfig(width=768, depth=12, heads=12, mlp_dim=3072),
}


class _Patches(nn.Module):
    """(B, leads, n * p) -> (B, leads, n, p); no parameters (index 0 of ``to_patch_embedding``)."""

    def __init__(self, patch_size: int) -> None:
        super().__init__()
        self.patch_size = patch_size

    def forward(self, x: Tensor) -> Tensor:
        b, c, t = x.shape
        return x.reshape(b, c, t // self.patch_size, self.patch_size)


class _PreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(self.norm(x))


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int, dim_head: int, qkv_bias: bool) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.to_qkv = nn.Linear(dim, 3 * inner, bias=qkv_bias)
        # upstream skips the output projection only for one head of the model's width
        self.to_out = (
            nn.Identity()
            if heads == 1 and dim_head == dim
            else nn.Sequential(nn.Linear(inner, dim), nn.Dropout(0.0))
        )

    def forward(self, x: Tensor) -> Tensor:
        b, n, _ = x.shape
        q, k, v = (t.reshape(b, n, self.heads, -1).transpose(1, 2) for t in self.to_qkv(x).chunk(3, dim=-1))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))


class _FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(0.0), nn.Linear(hidden, dim), nn.Dropout(0.0)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class _Block(nn.Module):
    def __init__(self, config: STMEMConfig) -> None:
        super().__init__()
        c = config
        self.attn = _PreNorm(c.width, _Attention(c.width, c.heads, c.dim_head, c.qkv_bias))
        self.ff = _PreNorm(c.width, _FeedForward(c.width, c.mlp_dim))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(x)
        return x + self.ff(x)


class STMEM(LinearHead, nn.Module):
    """ST-MEM's ViT encoder with an optional linear head. Input ``(B, leads, seq_len)``; a model
    takes as many leads as it has lead embeddings or fewer (upstream's rule)."""

    #: the name of this architecture in :mod:`ecgfounder.models.architectures`
    architecture = "st-mem"

    def __init__(self, config: STMEMConfig) -> None:
        super().__init__()
        self.config = config
        self.info: Any = None
        c = config
        self.to_patch_embedding = nn.Sequential(
            _Patches(c.patch_size),
            nn.LayerNorm(c.patch_size),
            nn.Linear(c.patch_size, c.width),
            nn.LayerNorm(c.width),
        )
        self.pos_embedding = nn.Parameter(torch.randn(1, c.n_patches + 2, c.width))
        self.sep_embedding = nn.Parameter(torch.randn(c.width))
        self.lead_embeddings = nn.ParameterList(
            nn.Parameter(torch.randn(c.width)) for _ in range(c.in_channels)
        )
        for i in range(c.depth):
            self.add_module(f"block{i}", _Block(c))
        self.dropout = nn.Dropout(0.0)
        self.norm = nn.LayerNorm(c.width)
        self.head: nn.Module = linear_head(c.width, c.n_classes)

    @property
    def num_features(self) -> int:
        return self.config.width

    def forward_tokens(self, x: Tensor) -> Tensor:
        """Every (lead, patch) token after the last block, ``(B, leads, n_patches, width)``."""
        if x.ndim != 3 or x.shape[-1] != self.config.seq_len:
            raise ValueError(
                f"ST-MEM expects a (batch, leads, {self.config.seq_len}) tensor, got shape {tuple(x.shape)}"
            )
        leads = x.shape[1]
        if leads > len(self.lead_embeddings):
            raise ValueError(f"ST-MEM was built for {len(self.lead_embeddings)} leads, got {leads}")
        tok = self.to_patch_embedding(x)
        b, _, n, w = tok.shape
        tok = tok + self.pos_embedding[:, 1 : n + 1].unsqueeze(1)
        sep = self.sep_embedding.expand(b, leads, 1, w)
        left = sep + self.pos_embedding[:, :1].unsqueeze(1)
        right = sep + self.pos_embedding[:, -1:].unsqueeze(1)
        tok = torch.cat([left, tok, right], dim=2)
        lead = torch.stack(list(self.lead_embeddings)[:leads])[None, :, None, :]
        tok = (tok + lead).reshape(b, leads * (n + 2), w)
        tok = self.dropout(tok)
        for i in range(self.config.depth):
            tok = getattr(self, f"block{i}")(tok)
        return tok.reshape(b, leads, n + 2, w)[:, :, 1:-1]

    def forward_features(self, x: Tensor) -> Tensor:
        """The embedding ``(B, width)``: mean of the patch tokens, layer-normalised."""
        return self.norm(self.forward_tokens(x).mean(dim=(1, 2)))

    def layer_groups(self) -> list[list[nn.Parameter]]:
        """Input to output: embeddings (patch, position, SEP, leads), each block, norm + head."""
        stem = [
            *self.to_patch_embedding.parameters(),
            self.pos_embedding,
            self.sep_embedding,
            *self.lead_embeddings,
        ]
        blocks = [list(getattr(self, f"block{i}").parameters()) for i in range(self.config.depth)]
        return [stem, *blocks, [*self.norm.parameters(), *self.head.parameters()]]


def filter_stmem_state(state: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], list[str]]:
    """The encoder's tensors of an upstream file: a pre-training checkpoint (``encoder.*`` +
    ``decoder`` tensors) keeps its encoder; an encoder or fine-tuned file is kept as it is."""
    if any(k.startswith("encoder.") for k in state):
        kept = {k[len("encoder.") :]: v for k, v in state.items() if k.startswith("encoder.")}
        dropped = len(state) - len(kept)
        return kept, [f"pre-training checkpoint: encoder kept, {dropped} decoder/mask tensors dropped"]
    return dict(state), []


def infer_stmem_config(
    state: Mapping[str, Tensor], source: Any = "<state dict>", **overrides: Any
) -> tuple[STMEMConfig, list[str]]:
    """The configuration a state dict was made with (heads and dim_head are not in the shapes:
    the released sizes' are assumed, 64 dimensions per head, unless overridden)."""
    from ..errors import CheckpointError

    try:
        patch = int(state["to_patch_embedding.1.weight"].shape[0])
        width = int(state["to_patch_embedding.2.weight"].shape[0])
        n_patches = int(state["pos_embedding"].shape[1]) - 2
        leads = sum(1 for k in state if k.startswith("lead_embeddings."))
        depth = sum(1 for k in state if k.startswith("block") and k.endswith(".attn.norm.weight"))
        mlp = int(state["block0.ff.fn.net.0.weight"].shape[0])
        inner = int(state["block0.attn.fn.to_qkv.weight"].shape[0]) // 3
    except KeyError as exc:
        raise CheckpointError(source, f"not an ST-MEM encoder: no tensor {exc}") from None
    n_classes = int(state["head.weight"].shape[0]) if "head.weight" in state else 0
    projected = "block0.attn.fn.to_out.0.weight" in state
    heads = max(1, inner // 64)
    if projected and heads == 1 and inner == width:  # upstream projects unless 1 head of the full width
        heads = 2
    heads = overrides.pop("heads", heads)
    config = STMEMConfig(
        seq_len=n_patches * patch,
        patch_size=patch,
        in_channels=leads,
        n_classes=n_classes,
        width=width,
        depth=depth,
        mlp_dim=mlp,
        heads=heads,
        dim_head=inner // heads,
        qkv_bias="block0.attn.fn.to_qkv.bias" in state,
    ).replace(**overrides)
    return config, [
        f"ST-MEM width {width}, {depth} blocks, {leads} leads, {n_patches} patches of {patch} "
        f"samples (from tensor shapes; {heads} heads assumed)"
    ]
