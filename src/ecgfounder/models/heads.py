"""The head every encoder family shares: one linear layer on the pooled embedding (or none)."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

__all__ = ["LinearHead", "linear_head"]


def linear_head(width: int, n_classes: int, like: Tensor | None = None) -> nn.Module:
    """``nn.Linear(width, n_classes)`` (on ``like``'s device and dtype), or ``nn.Identity`` for 0."""
    if n_classes <= 0:
        return nn.Identity()
    head = nn.Linear(width, n_classes)
    return head if like is None else head.to(device=like.device, dtype=like.dtype)


class LinearHead:
    """Mixin for an ``nn.Module`` whose head is the attribute named ``head_attr`` and whose
    ``config`` has ``n_classes``: ``forward``, ``forward_head``, ``get_classifier``,
    ``reset_classifier`` and ``num_parameters`` of the :class:`ECGClassifier` protocol."""

    head_attr = "head"

    @classmethod
    def from_config(cls, config: Any) -> Any:
        """Build from the architecture's config (the table's ``build``)."""
        return cls(config)  # type: ignore[call-arg]

    def get_classifier(self) -> nn.Module:
        return getattr(self, self.head_attr)

    def forward_head(self, features: Tensor) -> Tensor:
        return self.get_classifier()(features)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))  # type: ignore[attr-defined]

    def reset_classifier(self, n_classes: int) -> None:
        """A freshly initialised head for ``n_classes`` outputs (0: none, forward = the embedding)."""
        ref = next(self.parameters())  # type: ignore[attr-defined]
        setattr(self, self.head_attr, linear_head(self.num_features, n_classes, ref))  # type: ignore[attr-defined]
        self.config = self.config.replace(n_classes=n_classes)  # type: ignore[attr-defined]

    def num_parameters(self, trainable_only: bool = True) -> int:
        params = self.parameters()  # type: ignore[attr-defined]
        return sum(p.numel() for p in params if p.requires_grad or not trainable_only)
