"""ResNet for 32x32 images (CIFAR variant of He et al. 2016): 3x3 stem, no max pool, BasicBlocks."""

from __future__ import annotations

from dataclasses import dataclass

from .. import nn
from ..tensor import Tensor
from ._config import check_int, check_ints


@dataclass(frozen=True)
class ResNetConfig:
    """layers: BasicBlocks per stage ((2, 2, 2, 2) is ResNet-18); stage s has width * 2**s channels
    and stride 2 from the second stage on."""

    in_channels: int = 3
    num_classes: int = 10
    layers: tuple[int, ...] = (2, 2, 2, 2)
    width: int = 64

    def __post_init__(self):
        check_int(self, "in_channels")
        check_int(self, "num_classes", low=2)
        check_ints(self, "layers")
        check_int(self, "width")


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN + shortcut (1x1 conv + BN when the shape changes), then ReLU."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, cin, H, W) -> (B, cout, H / stride, W / stride)."""
        out = self.bn1(self.conv1(x)).relu()
        out = self.bn2(self.conv2(out))
        return (out + self.shortcut(x)).relu()


class ResNet(nn.Module):
    """x (B, in_channels, H, W) -> logits (B, num_classes); global average pool before the head."""

    def __init__(self, config: ResNetConfig | None = None):
        super().__init__()
        self.config = c = config or ResNetConfig()
        self.conv1 = nn.Conv2d(c.in_channels, c.width, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c.width)
        stages, cin = [], c.width
        for s, n in enumerate(c.layers):
            cout = c.width * 2 ** s
            blocks = []
            for b in range(n):
                blocks.append(BasicBlock(cin, cout, stride=2 if (s > 0 and b == 0) else 1))
                cin = cout
            stages.append(nn.Sequential(*blocks))
        self.layers = nn.Sequential(*stages)
        self.fc = nn.Linear(cin, c.num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, C, H, W) -> (B, num_classes)."""
        out = self.layers(self.bn1(self.conv1(x)).relu())
        return self.fc(out.mean(dim=(2, 3)))
