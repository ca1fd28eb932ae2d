"""ember: a full-stack deep learning system in Python.

Tensors and autograd (this package's top level), `ember.nn`, `ember.optim`, `ember.data`,
a compiler, parallel training and inference, each a layer a reader can open and change.
"""

from . import (
    _threadpools,  # noqa: F401  (first: short thread-pool waits, set before NumPy loads)
    autograd,  # noqa: F401  (ember.autograd.grad, .Function, ...)
)
from . import dtype as _dtype_mod
from .autograd import (
    checkpoint,
    enable_grad,
    inference_mode,
    is_grad_enabled,
    is_inference_mode_enabled,
    no_grad,
    set_grad_enabled,
)
from .compiler import compile  # noqa: E402,A004  (ember.compile)
from .creation import (
    arange,
    as_tensor,
    bernoulli,
    empty,
    empty_like,
    eye,
    from_numpy,
    full,
    full_like,
    linspace,
    normal,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randint_like,
    randn,
    randn_like,
    randperm,
    tensor,
    uniform,
    zeros,
    zeros_like,
)
from .devices import Device, device
from .dtype import (
    DType,
    bfloat16,
    float16,
    float32,
    float64,
    get_default_dtype,
    int8,
    int16,
    int32,
    int64,
    promote_types,
    result_type,
    set_default_dtype,
    uint8,
)
from .errors import AutogradError, DeviceError, DTypeError, EmberError, IndexingError, ShapeError
from .io import load, save
from .ops import *  # noqa: F401,F403
from .ops import elementwise as _e
from .random import Generator, get_rng_state, initial_seed, manual_seed, seed, set_rng_state
from .tensor import Tensor

bool = _dtype_mod.bool_  # noqa: A001  (torch.bool)
float = float32  # noqa: A001
double = float64
half = float16
long = int64
int = int32  # noqa: A001
abs = _e.abs  # noqa: A001
round = _e.round  # noqa: A001
pow = _e.pow  # noqa: A001

__version__ = "0.1.0"

# The layers above the tensor core load on first use (`ember.nn.Linear` after a plain `import ember`),
# so importing ember stays fast and no layer imports one above it at import time.
_SUBPACKAGES = ("nn", "optim", "data", "amp", "models", "distributed", "training", "inference")


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        import importlib
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'ember' has no attribute {name!r}")
