"""The Tensor: a device buffer plus a dtype, autograd bookkeeping and PyTorch's method names.

Tensor holds data; it does not compute. Every method that computes is an op from
`ember.ops`, bound onto the class when `ember.ops` is imported, so the op
registry stays the one place an op is defined.
"""

from __future__ import annotations

import numpy as np

from . import dtype as dt
from .devices import CPU, Device, backend
from .errors import AutogradError, DTypeError


class Tensor:
    """An n-dimensional array on a device that can record operations for autograd.

    Make one with `ember.tensor(data)` or a factory (`zeros`, `randn`, ...); the
    constructor itself is internal.
    """

    __slots__ = ("_data", "dtype", "device", "requires_grad", "grad", "grad_fn", "_vc", "_base",
                 "_hooks", "_post_hooks", "_acc", "_retains_grad", "__weakref__")

    __array_priority__ = 1000  # so `ndarray + Tensor` defers to Tensor.__radd__

    @staticmethod
    def _make(data, dtype: dt.DType, device: Device = CPU, requires_grad: bool = False) -> Tensor:
        """Wrap a device buffer without copying (internal: no validation)."""
        t = object.__new__(Tensor)
        t._data = data
        t.dtype = dtype
        t.device = device
        t.requires_grad = requires_grad
        t.grad = None
        t.grad_fn = None
        t._vc = [0]
        t._base = None
        t._hooks = None
        t._post_hooks = None
        t._acc = None
        t._retains_grad = False
        return t

    def __init__(self, *args, **kwargs):
        raise TypeError("use ember.tensor(data), ember.zeros(...), ... to make tensors")

    # --- shape and metadata -------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        """The size of each dimension, e.g. `(B, C)`."""
        return self._data.shape

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return self._data.ndim

    def dim(self) -> int:
        """Number of dimensions (as `ndim`)."""
        return self._data.ndim

    def size(self, dim: int | None = None):
        """The shape, or the length of dimension `dim`."""
        return self._data.shape if dim is None else self._data.shape[dim]

    def numel(self) -> int:
        """Number of elements (product of the shape)."""
        return int(self._data.size)

    def element_size(self) -> int:
        """Bytes per element."""
        return self.dtype.itemsize

    @property
    def nbytes(self) -> int:
        """Bytes of the elements (numel * element_size)."""
        return self._data.size * self.dtype.itemsize

    @property
    def is_leaf(self) -> bool:
        """True for tensors not produced by a recorded op (inputs, parameters)."""
        return self.grad_fn is None

    @property
    def _version(self) -> int:
        """How many in-place ops have changed this tensor's storage."""
        return self._vc[0]

    def is_floating_point(self) -> bool:
        """Whether the dtype is float16/bfloat16/float32/float64."""
        return self.dtype.is_floating_point

    def is_contiguous(self) -> bool:
        """Whether the buffer is laid out row-major without gaps."""
        return bool(self._data.flags.c_contiguous)

    def data_ptr(self) -> int:
        """Address of the first element (cpu buffers)."""
        return self._data.__array_interface__["data"][0]

    @property
    def data(self) -> Tensor:
        """The same storage, detached from the graph (as torch's `.data`)."""
        return self.detach()

    # --- conversion out of ember -------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """The buffer as a NumPy array (shares memory on cpu). Refuses tensors that require grad."""
        if self.requires_grad:
            raise AutogradError("numpy(): the tensor requires grad; call .detach().numpy() instead")
        return backend(self.device).to_numpy(self._data)

    def item(self):
        """The value of a one-element tensor as a Python number."""
        if self._data.size != 1:
            raise ValueError(f"item(): tensor has {self._data.size} elements, expected exactly 1")
        v = self._data.reshape(())
        return v.item() if self.dtype not in dt.LOW_PRECISION else float(v)

    def tolist(self):
        """Nested Python lists of Python numbers."""
        a = self._data
        return a.astype(np.float32).tolist() if self.dtype is dt.bfloat16 else a.tolist()

    def __len__(self) -> int:
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __iter__(self):
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self._data.shape[0]))

    def __bool__(self) -> bool:
        if self._data.size != 1:
            raise ValueError(f"bool value of a tensor with {self._data.size} elements is ambiguous; "
                             "use .any() or .all()")
        return bool(self._data.reshape(()))

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self.dtype.category == 2 or self._data.size != 1:
            raise TypeError("only integer tensors of a single element can be used as an index")
        return int(self.item())

    def __hash__(self) -> int:
        return id(self)

    def __array__(self, dtype=None, copy=None):
        a = self.detach().numpy()
        return a if dtype is None else a.astype(dtype)

    # --- printing ----------------------------------------------------------------------
    def __repr__(self) -> str:
        from .tensor_str import tensor_repr
        return tensor_repr(self)

    __str__ = __repr__

    # --- autograd entry points (the engine lives in autograd.py) ----------------------------
    def backward(self, gradient: Tensor | None = None, retain_graph: bool | None = None,
                 create_graph: bool = False, inputs=None) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's `.grad` (see ember.autograd.backward)."""
        from .autograd import backward
        backward(self, gradient, retain_graph=retain_graph, create_graph=create_graph, inputs=inputs)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Mark a leaf as needing gradients; only floating tensors can."""
        if requires_grad and not self.dtype.is_floating_point:
            raise AutogradError(f"requires_grad_: only floating point tensors can require gradients, "
                                f"got {self.dtype}")
        if not requires_grad and self.grad_fn is not None:
            raise AutogradError("requires_grad_(False) on a non-leaf tensor; use .detach() instead")
        self.requires_grad = requires_grad
        return self

    def detach(self) -> Tensor:
        """A tensor sharing this storage with no history (in-place changes show in both)."""
        t = Tensor._make(self._data, self.dtype, self.device)
        t._vc = self._vc
        return t

    def detach_(self) -> Tensor:
        """Drop this tensor's history in place (it becomes a leaf that does not require grad)."""
        self.grad_fn = None
        self.requires_grad = False
        return self

    def retain_grad(self) -> None:
        """Keep `.grad` on a non-leaf tensor after backward (accumulating across calls). The
        retained gradient is the one after this tensor's other hooks, as in PyTorch."""
        if self.grad_fn is None or self._retains_grad:
            return
        import weakref
        ref = weakref.ref(self)

        def keep(g):
            t = ref()
            if t is not None:
                t.grad = g.detach() if t.grad is None else t.grad + g.detach()
        keep._ember_retain = True
        self._retains_grad = True
        self._node_hooks().append(keep)

    def register_hook(self, hook) -> _Handle:
        """Call `hook(grad)` whenever this tensor's gradient is computed; a non-None return
        replaces the gradient. Works on leaves and non-leaves. Returns a handle with `.remove()`."""
        if not self.requires_grad:
            raise AutogradError("register_hook: cannot register a hook on a tensor that does not "
                                "require grad. Hint: call .requires_grad_() first")
        hooks = self._node_hooks() if self.grad_fn is not None else self._leaf_hooks()
        n = len(hooks)
        while n and getattr(hooks[n - 1], "_ember_retain", False):
            n -= 1  # retain_grad's hook stays last
        hooks.insert(n, hook)
        return _Handle(hooks, hook)

    def _node_hooks(self) -> list:
        fn = self.grad_fn
        if fn.hooks is None:
            fn.hooks = []
        return fn.hooks

    def register_post_accumulate_grad_hook(self, hook) -> _Handle:
        """Call `hook(tensor)` once per backward, after `.grad` of this leaf has been accumulated
        (leaves fire in reverse order of use, so DDP can start all-reducing early). Returns a
        handle with `.remove()`."""
        if self.grad_fn is not None:
            raise AutogradError("register_post_accumulate_grad_hook: post accumulate grad hooks cannot be "
                                "registered on non-leaf tensors (they have no .grad to accumulate)")
        if not self.requires_grad:
            raise AutogradError("register_post_accumulate_grad_hook: cannot register a hook on a tensor "
                                "that does not require grad")
        if self._post_hooks is None:
            self._post_hooks = []
        self._post_hooks.append(hook)
        return _Handle(self._post_hooks, hook)

    def _leaf_hooks(self) -> list:
        if self._hooks is None:
            self._hooks = []
        return self._hooks

    # --- dtype and device moves -------------------------------------------------------
    def to(self, *args, dtype=None, device=None, copy: bool = False) -> Tensor:
        """`to(dtype)`, `to(device)`, `to(other_tensor)` or keywords; differentiable."""
        for a in args:
            if isinstance(a, Tensor):
                dtype, device = a.dtype, a.device
            elif isinstance(a, (dt.DType, np.dtype, type)) or (isinstance(a, str) and a in dt._BY_NAME):
                dtype = a
            else:
                device = a
        out = self
        if device is not None:
            from .devices import device as parse
            d = parse(device)
            if d != self.device:
                backend(d)  # raises DeviceError naming what is available
        if dtype is not None:
            d = dt.get_dtype(dtype)
            if d is not self.dtype:
                from .ops.elementwise import cast
                out = cast(self, d)
        if copy and out is self:
            out = self.clone()
        return out

    def type(self, dtype=None):
        """The dtype's name (`'ember.float32'`) without an argument; with one, `.to(dtype)`."""
        if dtype is None:
            return f"ember.{self.dtype.name}"
        return self.to(dtype)

    def float(self) -> Tensor:
        """As float32 (differentiable)."""
        return self.to(dt.float32)

    def double(self) -> Tensor:
        """As float64 (differentiable)."""
        return self.to(dt.float64)

    def half(self) -> Tensor:
        """As float16 (differentiable)."""
        return self.to(dt.float16)

    def bfloat16(self) -> Tensor:
        """As bfloat16 (differentiable)."""
        return self.to(dt.bfloat16)

    def long(self) -> Tensor:
        """As int64 (rounds toward zero; no gradient)."""
        return self.to(dt.int64)

    def int(self) -> Tensor:
        """As int32 (rounds toward zero; no gradient)."""
        return self.to(dt.int32)

    def bool(self) -> Tensor:
        """As bool (nonzero is True)."""
        return self.to(dt.bool_)

    def cpu(self) -> Tensor:
        """This tensor (ember's buffers already live on the cpu here)."""
        return self


class _Handle:
    """Returned by hook registration; `remove()` unregisters."""

    def __init__(self, lst, item):
        self._lst, self._item = lst, item

    def remove(self) -> None:
        """Unregister the hook (a no-op if already removed)."""
        if self._item in self._lst:
            self._lst.remove(self._item)


def check_grad_dtype(d: dt.DType, where: str) -> None:
    """Raise DTypeError unless `d` can carry gradients (a floating dtype)."""
    if not d.is_floating_point:
        raise DTypeError(f"{where}: only floating point tensors can require gradients, got {d}")
