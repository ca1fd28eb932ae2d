"""ember.nn.functional: torch.nn.functional's names and argument orders, written with ember ops.

Each topic lives in ember/nn/_functional/ (conv, pooling, norm, loss, attention, basic); this
module is the one place users import from (`import ember.nn.functional as F`).
"""

from ..ops.movement import pad
from ._functional.attention import scaled_dot_product_attention
from ._functional.basic import (
    dropout,
    dropout2d,
    elu,
    embedding,
    gelu,
    glu,
    hardtanh,
    leaky_relu,
    log_softmax,
    logsigmoid,
    mish,
    one_hot,
    relu,
    relu6,
    sigmoid,
    silu,
    softmax,
    softmin,
    softplus,
    tanh,
)
from ._functional.conv import conv1d, conv2d, conv_transpose1d, conv_transpose2d, fold, linear, unfold
from ._functional.loss import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    l1_loss,
    mse_loss,
    nll_loss,
    smooth_l1_loss,
)
from ._functional.norm import batch_norm, group_norm, instance_norm, layer_norm, normalize, rms_norm
from ._functional.pooling import (
    adaptive_avg_pool1d,
    adaptive_avg_pool2d,
    avg_pool1d,
    avg_pool2d,
    max_pool1d,
    max_pool2d,
)

__all__ = [
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "avg_pool1d", "avg_pool2d", "batch_norm",
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "conv1d", "conv2d", "conv_transpose1d",
    "conv_transpose2d", "cross_entropy", "dropout", "dropout2d", "elu", "embedding", "fold", "gelu", "glu",
    "group_norm", "hardtanh", "instance_norm", "l1_loss", "layer_norm", "leaky_relu", "linear",
    "log_softmax", "logsigmoid", "max_pool1d", "max_pool2d", "mish", "mse_loss", "nll_loss", "normalize",
    "one_hot", "pad", "relu", "relu6", "rms_norm", "scaled_dot_product_attention", "sigmoid", "silu",
    "smooth_l1_loss", "softmax", "softmin", "softplus", "tanh", "unfold",
]
