"""Small convolutional classifier (workload W2 of BENCHMARKS.md): two conv-ReLU-maxpool stages, two
linear layers."""

from __future__ import annotations

from dataclasses import dataclass

from .. import nn
from ..tensor import Tensor
from ._config import check_int, check_ints


@dataclass(frozen=True)
class ConvNetConfig:
    """conv(in->c0, 3x3, pad 1)-ReLU-maxpool 2 -> conv(c0->c1)-ReLU-maxpool 2 -> linear(c1*(s/4)^2 -> hidden)
    -ReLU -> linear(hidden -> num_classes). The defaults are W2 on 28x28 MNIST (3136 -> 128 -> 10)."""

    in_channels: int = 1
    image_size: int = 28
    channels: tuple[int, int] = (32, 64)
    hidden: int = 128
    num_classes: int = 10

    def __post_init__(self):
        check_int(self, "in_channels")
        check_int(self, "image_size", low=4)
        if self.image_size % 4:
            raise ValueError(f"ConvNetConfig.image_size must be divisible by 4 (two 2x2 max pools), "
                             f"got {self.image_size}")
        check_ints(self, "channels", min_len=2)
        if len(self.channels) != 2:
            raise ValueError(f"ConvNetConfig.channels must hold exactly 2 ints, got {self.channels!r}")
        check_int(self, "hidden")
        check_int(self, "num_classes", low=2)


class ConvNet(nn.Module):
    """x (B, in_channels, S, S) -> logits (B, num_classes)."""

    def __init__(self, config: ConvNetConfig | None = None):
        super().__init__()
        self.config = c = config or ConvNetConfig()
        c0, c1 = c.channels
        self.features = nn.Sequential(
            nn.Conv2d(c.in_channels, c0, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c0, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        flat = c1 * (c.image_size // 4) ** 2
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(flat, c.hidden), nn.ReLU(),
                                        nn.Linear(c.hidden, c.num_classes))

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, C, S, S) -> (B, num_classes)."""
        return self.classifier(self.features(x))
