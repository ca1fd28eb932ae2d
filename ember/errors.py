"""ember's exceptions: every user-facing failure is one of these.

Each message names the op (or file), what was given, what was expected and, where
it helps, a hint. They subclass the matching builtin so `except ValueError` still works.
"""


class EmberError(Exception):
    """Base class of every error ember raises on purpose."""


class ShapeError(EmberError, ValueError):
    """Shapes that do not fit an op: `matmul: (2, 3) @ (2, 3): inner dimensions 3 and 2 differ`."""


class DTypeError(EmberError, TypeError):
    """A dtype an op cannot take, or two dtypes that must agree and do not."""


class DeviceError(EmberError, RuntimeError):
    """Tensors on different devices, or a device that is not available."""


class AutogradError(EmberError, RuntimeError):
    """Misuse of autograd: backward twice through a freed graph, grads of integers, ..."""


class IndexingError(EmberError, IndexError):
    """An index out of range or of a kind the tensor cannot take."""


class CheckpointError(EmberError, ValueError):
    """A weights file or checkpoint directory that is missing, truncated or corrupt; names the file."""


def fmt_shape(shape) -> str:
    """Render a shape the way messages print it: `(2, 3)`, `(5,)`, `()`."""
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
