"""MLP classifier (workload W1 of BENCHMARKS.md: 784-512-512-10 with ReLU)."""

from __future__ import annotations

from dataclasses import dataclass

from .. import nn
from ..tensor import Tensor
from ._config import check_int, check_ints, check_prob


@dataclass(frozen=True)
class MLPConfig:
    """in_features -> hidden[0] -> ... -> num_classes, ReLU between layers, optional dropout."""

    in_features: int = 784
    hidden: tuple[int, ...] = (512, 512)
    num_classes: int = 10
    dropout: float = 0.0

    def __post_init__(self):
        check_int(self, "in_features")
        check_ints(self, "hidden", min_len=0)
        check_int(self, "num_classes", low=2)
        check_prob(self, "dropout")


class MLP(nn.Module):
    """A multilayer perceptron: x (B, ...) flattened to (B, in_features) -> logits (B, num_classes)."""

    def __init__(self, config: MLPConfig | None = None):
        super().__init__()
        self.config = config = config or MLPConfig()
        sizes = (config.in_features, *config.hidden)
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
            if config.dropout:
                layers.append(nn.Dropout(config.dropout))
        layers.append(nn.Linear(sizes[-1], config.num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, C, H, W) or (B, in_features) -> (B, num_classes)."""
        return self.net(x.reshape(x.shape[0], -1))
