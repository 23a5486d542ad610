"""The ECGFounder network: a RegNet-style 1D CNN ("Net1D").

Structure (identical, tensor name for tensor name, to the official ``net1d.py`` so that the released
checkpoints load with ``strict=True``)::

    first_conv (SAME conv, stride 2) -> first_bn -> Swish
    stage_list[i] (i = 0..len(filter_list)-1), each ``m_blocks_list[i]`` bottleneck blocks:
        [bn1 -> Swish -> dropout]  (skipped in the very first block of the network)
        conv1 1x1 -> bn2 -> Swish -> dropout
        conv2 k (grouped, stride 2 in the first block of the stage) -> bn3 -> Swish -> dropout
        conv3 1x1
        squeeze-and-excitation (mean over time -> fc -> Swish -> fc -> sigmoid), channel re-weighting
        + shortcut: max-pool (zero-padded SAME) when the block downsamples, and zero channels added
          evenly before and after when the width grows
    mean over time  -> features (B, filter_list[-1])
    dense (Linear)  -> logits (B, n_classes)

BatchNorm modules always exist (their tensors are part of the released ``state_dict``), but they are
only applied when ``use_bn=True``; the released models use ``use_bn=False``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import Net1DConfig

__all__ = ["Net1D", "same_padding"]


def same_padding(length: int, kernel_size: int, stride: int) -> tuple[int, int]:
    """Left/right zero padding that makes a strided window give ``ceil(length / stride)`` outputs.

    The odd sample of an uneven total goes to the right, as TensorFlow's ``SAME`` does.
    """
    out_len = -(-length // stride)
    total = max(0, (out_len - 1) * stride + kernel_size - length)
    return total // 2, total - total // 2


class Swish(nn.Module):
    """``x * sigmoid(x)`` (SiLU)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.silu(x)


class SameConv1d(nn.Module):
    """``nn.Conv1d`` with SAME zero padding computed from the input length at run time.

    The convolution lives in the attribute ``conv`` (state-dict names ``....conv.weight``).
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride, groups=groups)

    def forward(self, x: Tensor) -> Tensor:
        if self.kernel_size > 1 or self.stride > 1:
            x = F.pad(x, same_padding(x.shape[-1], self.kernel_size, self.stride))
        return self.conv(x)


class SameMaxPool1d(nn.Module):
    """Max-pool with window = step = ``kernel_size`` after zero padding to SAME length.

    As upstream, the padding is computed for a step of 1 (``kernel_size - 1`` zeros, the extra one on
    the right) and the pad value is 0, not -inf: with an odd length the last output is
    ``max(x[-1], 0)``. This is part of the released model's behaviour and is kept bit for bit.
    """

    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        self.kernel_size = kernel_size

    def forward(self, x: Tensor) -> Tensor:
        x = F.pad(x, same_padding(x.shape[-1], self.kernel_size, 1))
        return F.max_pool1d(x, self.kernel_size)


class BottleneckBlock(nn.Module):
    """Pre-activation bottleneck with grouped k-conv, squeeze-and-excitation and a padded shortcut."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        ratio: float,
        kernel_size: int,
        stride: int,
        groups: int,
        downsample: bool,
        is_first_block: bool = False,
        use_bn: bool = True,
        use_do: bool = True,
        drop_rate: float = 0.5,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.downsample = downsample
        self.is_first_block = is_first_block
        self.use_bn = use_bn
        self.use_do = use_do
        middle = int(out_channels * ratio)

        # Registration order fixes the state_dict order: bn1, conv1, bn2, conv2, bn3, conv3, se_fc1, se_fc2.
        self.bn1 = nn.BatchNorm1d(in_channels)
        self.activation1 = Swish()
        self.do1 = nn.Dropout(drop_rate)
        self.conv1 = SameConv1d(in_channels, middle, 1)
        self.bn2 = nn.BatchNorm1d(middle)
        self.activation2 = Swish()
        self.do2 = nn.Dropout(drop_rate)
        self.conv2 = SameConv1d(
            middle, middle, kernel_size, stride=stride if downsample else 1, groups=groups
        )
        self.bn3 = nn.BatchNorm1d(middle)
        self.activation3 = Swish()
        self.do3 = nn.Dropout(drop_rate)
        self.conv3 = SameConv1d(middle, out_channels, 1)
        self.se_fc1 = nn.Linear(out_channels, out_channels // 2)
        self.se_activation = Swish()
        self.se_fc2 = nn.Linear(out_channels // 2, out_channels)
        self.max_pool = SameMaxPool1d(stride) if downsample else None

    def _pre(self, x: Tensor, bn: nn.Module, act: nn.Module, do: nn.Module) -> Tensor:
        if self.use_bn:
            x = bn(x)
        x = act(x)
        if self.use_do:
            x = do(x)
        return x

    def forward(self, x: Tensor) -> Tensor:
        out = x if self.is_first_block else self._pre(x, self.bn1, self.activation1, self.do1)
        out = self.conv1(out)
        out = self.conv2(self._pre(out, self.bn2, self.activation2, self.do2))
        out = self.conv3(self._pre(out, self.bn3, self.activation3, self.do3))

        se = self.se_fc2(self.se_activation(self.se_fc1(out.mean(-1))))
        out = out * torch.sigmoid(se).unsqueeze(-1)

        shortcut = self.max_pool(x) if self.max_pool is not None else x
        extra = self.out_channels - self.in_channels
        if extra:
            # F.pad on a (B, C, T) tensor: the last pair pads dim -2 (channels).
            shortcut = F.pad(shortcut, (0, 0, extra // 2, extra - extra // 2))
        return out + shortcut


class Stage(nn.Module):
    """``m_blocks`` bottleneck blocks; the first one downsamples and changes the width."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        ratio: float,
        kernel_size: int,
        stride: int,
        groups: int,
        i_stage: int,
        m_blocks: int,
        use_bn: bool = True,
        use_do: bool = True,
        drop_rate: float = 0.5,
    ) -> None:
        super().__init__()
        self.block_list = nn.ModuleList(
            BottleneckBlock(
                in_channels=in_channels if i == 0 else out_channels,
                out_channels=out_channels,
                ratio=ratio,
                kernel_size=kernel_size,
                stride=stride,
                groups=groups,
                downsample=i == 0,
                is_first_block=i_stage == 0 and i == 0,
                use_bn=use_bn,
                use_do=use_do,
                drop_rate=drop_rate,
            )
            for i in range(m_blocks)
        )

    def forward(self, x: Tensor) -> Tensor:
        for block in self.block_list:
            x = block(x)
        return x


class Net1D(nn.Module):
    """The ECGFounder backbone and classification head.

    The constructor takes the upstream arguments, so ``Net1D(in_channels=12, base_filters=64,
    ratio=1, filter_list=[64, 160, 160, 400, 400, 1024, 1024], m_blocks_list=[2, 2, 2, 3, 3, 4, 4],
    kernel_size=16, stride=2, groups_width=16, n_classes=150, use_bn=False, use_do=False)`` is the
    released 12-lead model. ``n_classes=0`` builds a backbone without a head (``forward`` then
    returns the pooled features).

    Input: ``(batch, in_channels, samples)`` float tensor (the released models: 5000 samples at
    500 Hz, preprocessed by the ``ecgfounder`` recipe). Any length works; the contract that says
    which is carried by the model registry and by our checkpoints, not by the network.
    """

    #: the name of this architecture in :mod:`ecgfounder.models.architectures`
    architecture = "net1d"

    def __init__(
        self,
        in_channels: int,
        base_filters: int,
        ratio: float,
        filter_list: Sequence[int],
        m_blocks_list: Sequence[int],
        kernel_size: int,
        stride: int,
        groups_width: int,
        n_classes: int,
        use_bn: bool = True,
        use_do: bool = True,
        return_features: bool = False,
        drop_rate: float = 0.5,
        verbose: bool = False,
    ) -> None:
        super().__init__()
        self.config = Net1DConfig(
            in_channels=in_channels,
            base_filters=base_filters,
            ratio=ratio,
            filter_list=tuple(filter_list),
            m_blocks_list=tuple(m_blocks_list),
            kernel_size=kernel_size,
            stride=stride,
            groups_width=groups_width,
            n_classes=n_classes,
            use_bn=use_bn,
            use_do=use_do,
        )
        self.config.validate()
        self.use_bn = use_bn
        self.use_do = use_do
        self.return_features = return_features
        #: :class:`~ecgfounder.models.factory.ModelInfo` (contract, labels, provenance) once the
        #: model comes from ``create_model``/``load_model``; ``None`` for a bare ``Net1D(...)``.
        self.info: Any = None

        self.first_conv = SameConv1d(in_channels, base_filters, kernel_size, stride=2)
        self.first_bn = nn.BatchNorm1d(base_filters)
        self.first_activation = Swish()
        stages = []
        width = base_filters
        for i, (out_channels, m_blocks) in enumerate(zip(filter_list, m_blocks_list)):
            stages.append(
                Stage(
                    width,
                    out_channels,
                    ratio,
                    kernel_size,
                    stride,
                    groups=out_channels // groups_width,
                    i_stage=i,
                    m_blocks=m_blocks,
                    use_bn=use_bn,
                    use_do=use_do,
                    drop_rate=drop_rate,
                )
            )
            width = out_channels
        self.stage_list = nn.ModuleList(stages)
        self.num_features = width
        self.dense: nn.Module = nn.Linear(width, n_classes) if n_classes > 0 else nn.Identity()

    @classmethod
    def from_config(cls, config: Net1DConfig, **kwargs: object) -> Net1D:
        """Build from a :class:`Net1DConfig` (extra keyword arguments go to the constructor)."""
        return cls(**config.to_kwargs(), **kwargs)  # type: ignore[arg-type]

    @property
    def n_classes(self) -> int:
        return self.config.n_classes

    def forward_backbone(self, x: Tensor) -> Tensor:
        """The last stage's feature map, ``(B, num_features, T / 2**(1 + n_stages))`` (rounded up)."""
        if x.ndim != 3:
            raise ValueError(f"Net1D expects a (batch, leads, samples) tensor, got shape {tuple(x.shape)}")
        if x.shape[1] != self.config.in_channels:
            raise ValueError(
                f"Net1D was built for {self.config.in_channels} input lead(s), got a tensor with {x.shape[1]}"
            )
        out = self.first_conv(x)
        if self.use_bn:
            out = self.first_bn(out)
        out = self.first_activation(out)
        for stage in self.stage_list:
            out = stage(out)
        return out

    def forward_features(self, x: Tensor) -> Tensor:
        """The pooled embedding ``(B, num_features)`` (1024 for the released models)."""
        return self.forward_backbone(x).mean(-1)

    def forward_head(self, features: Tensor) -> Tensor:
        """Logits from pooled features."""
        return self.dense(features)

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        features = self.forward_features(x)
        logits = self.dense(features)
        if self.return_features:
            return logits, features
        return logits

    def get_classifier(self) -> nn.Module:
        """The head (timm's name for it): ``dense``."""
        return self.dense

    def layer_groups(self) -> list[list[nn.Parameter]]:
        """Parameters from input to output: stem, each stage, head (for layer-wise learning rates
        and partial fine-tuning)."""
        stem = list(self.first_conv.parameters()) + list(self.first_bn.parameters())
        return [stem] + [list(s.parameters()) for s in self.stage_list] + [list(self.dense.parameters())]

    def reset_classifier(self, n_classes: int) -> None:
        """Replace the head with a freshly initialised one for ``n_classes`` outputs (0: no head)."""
        ref = next(self.parameters())
        self.dense = (
            nn.Linear(self.num_features, n_classes).to(device=ref.device, dtype=ref.dtype)
            if n_classes > 0
            else nn.Identity()
        )
        self.config = self.config.replace(n_classes=n_classes)

    def num_parameters(self, trainable_only: bool = True) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)
