"""Parameter: a leaf Tensor that a Module registers as learnable.

A subclass of Tensor with no extra state (`__slots__ = ()`), so `isinstance(p, Parameter)`
tells a Module what to register, and everything a Tensor does a Parameter does too.
"""

from __future__ import annotations

from ..creation import empty
from ..tensor import Tensor


class Parameter(Tensor):
    """`Parameter(data, requires_grad=True)`: a leaf sharing `data`'s storage, marked for training.

    Ops on a Parameter return plain Tensors; `Module.__setattr__` registers Parameters
    assigned as attributes.
    """

    __slots__ = ()

    def __new__(cls, data: Tensor | None = None, requires_grad: bool = True) -> Parameter:
        if data is None:
            data = empty(0)
        if not isinstance(data, Tensor):
            raise TypeError(f"Parameter: expected an ember Tensor, got {type(data).__name__}. "
                            "Hint: wrap data with ember.tensor(...) first")
        p = object.__new__(cls)
        p._data = data._data
        p.dtype = data.dtype
        p.device = data.device
        p.requires_grad = False
        p.grad = None
        p.grad_fn = None
        p._vc = data._vc  # shares storage, so shares the version counter too
        p._base = None
        p._hooks = None
        p._post_hooks = None
        p._acc = None
        p._retains_grad = False
        if requires_grad:
            p.requires_grad_(True)
        return p

    def __init__(self, data: Tensor | None = None, requires_grad: bool = True):
        pass  # all set up in __new__ (Tensor.__init__ refuses direct construction)

    def __reduce_ex__(self, protocol):
        # copy/deepcopy/pickle: rebuild from a plain tensor holding the same values
        return (_rebuild_parameter, (self.detach(), self.requires_grad))

    def __deepcopy__(self, memo):
        if id(self) in memo:
            return memo[id(self)]
        p = Parameter(self.detach().clone(), self.requires_grad)
        if self.grad is not None:
            p.grad = self.grad.detach().clone()
        memo[id(self)] = p
        return p

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    __str__ = __repr__


def _rebuild_parameter(data: Tensor, requires_grad: bool) -> Parameter:
    return Parameter(data, requires_grad)


class Buffer:
    """Marker for `Module.__setattr__`: `self.x = Buffer(t, persistent=False)` registers a buffer
    (as torch.nn.Buffer)."""

    def __init__(self, data: Tensor, persistent: bool = True):
        self.data = data
        self.persistent = persistent
