"""Mixed precision: `autocast` runs matmul-based ops in float16/bfloat16, and `GradScaler` scales the loss.

Inside `autocast`, matmul (and so linear and conv, which are built on it) casts its float32
inputs to the low dtype, while softmax, log_softmax, norms and losses, decorated with
`float32_inputs`, compute in float32. The only global state is `_state` below.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

from . import dtype as dt
from .autograd import no_grad
from .errors import DTypeError
from .tensor import Tensor


class _State(threading.local):
    """The one piece of global amp state: the low dtype while autocast is on, else None.
    Per thread, as PyTorch's: a server thread's autocast does not leak into another's matmuls."""

    dtype: dt.DType | None = None


_state = _State()


def is_autocast_enabled() -> bool:
    return _state.dtype is not None


def get_autocast_dtype() -> dt.DType | None:
    """The dtype autocast casts matmul inputs to, or None outside autocast."""
    return _state.dtype


class autocast:
    """Context manager and decorator: matmul/linear/conv in `dtype`, numerically sensitive ops in float32.

    `autocast(dtype=ember.bfloat16)`, `autocast("cpu", dtype=ember.float16)` or `autocast(ember.float16)`;
    the default dtype is bfloat16 on cpu and float16 elsewhere (PyTorch's defaults). `enabled=False`
    turns autocast off inside an enclosing region. Gradients flow back to the original float32 tensors.
    """

    def __init__(self, device_type: str | dt.DType = "cpu", dtype: dt.DType | str | None = None,
                 enabled: bool = True, cache_enabled: bool | None = None):
        if isinstance(device_type, (dt.DType, str)) and not _is_device(device_type):
            dtype, device_type = device_type, "cpu"
        if dtype is None:
            dtype = dt.bfloat16 if device_type == "cpu" else dt.float16
        dtype = dt.get_dtype(dtype)
        if dtype not in dt.LOW_PRECISION:
            raise DTypeError(f"autocast: dtype must be ember.float16 or ember.bfloat16, got {dtype}")
        self.device_type = device_type
        self.fast_dtype = dtype
        self.enabled = bool(enabled)

    def __enter__(self) -> autocast:
        self._prev = _state.dtype
        _state.dtype = self.fast_dtype if self.enabled else None
        return self

    def __exit__(self, *exc) -> bool:
        _state.dtype = self._prev
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with autocast(self.device_type, self.fast_dtype, self.enabled):
                return fn(*args, **kwargs)
        return wrapper


def _is_device(name) -> bool:
    return isinstance(name, str) and name.split(":")[0] in ("cpu", "cuda", "opencl")


def _to(t, dtype: dt.DType):
    # only float32 is cast down; float64 stays (as PyTorch), other dtypes are not floats
    if isinstance(t, Tensor) and t.dtype is not dtype and t.dtype.category == 2 and t.dtype is not dt.float64:
        return t.to(dtype)
    return t


def cast_pair(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """(a, b) in the autocast dtype when autocast is on, else unchanged: matmul's hook."""
    low = _state.dtype
    if low is None:
        return a, b
    return _to(a, low), _to(b, low)


def low_precision_inputs(fn):
    """Decorator: under autocast, cast fn's float tensor arguments to the autocast dtype first
    (linear and conv, so their bias add stays in the low dtype like PyTorch's)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        low = _state.dtype
        if low is None:
            return fn(*args, **kwargs)
        return fn(*(_to(a, low) for a in args), **{k: _to(v, low) for k, v in kwargs.items()})
    return wrapper


def _up(t):
    if isinstance(t, Tensor) and t.dtype in dt.LOW_PRECISION:
        return t.to(dt.float32)
    return t


def float32_inputs(fn):
    """Decorator: under autocast, cast fn's float16/bfloat16 tensor arguments to float32 first
    (softmax, norms, losses: ops whose accuracy needs float32). A no-op outside autocast."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if _state.dtype is None:
            return fn(*args, **kwargs)
        return fn(*(_up(a) for a in args), **{k: _up(v) for k, v in kwargs.items()})
    return wrapper


# --- loss scaling --------------------------------------------------------------------------------

_READY, _UNSCALED, _STEPPED = 0, 1, 2


class GradScaler:
    """Dynamic loss scaling (PyTorch's torch.amp.GradScaler on one device).

    scale(loss) multiplies by the scale; unscale_(opt) divides the gradients by it and records
    whether any was inf/NaN; step(opt) skips the update when one was; update() halves the scale
    after a skipped step (backoff_factor) and doubles it after growth_interval clean steps.
    Unlike PyTorch, a second unscale_ before update() is a no-op rather than an error.
    """

    def __init__(self, device: str | float = "cpu", init_scale: float = 2.0 ** 16, growth_factor: float = 2.0,
                 backoff_factor: float = 0.5, growth_interval: int = 2000, enabled: bool = True):
        if not isinstance(device, str):  # GradScaler(2.**10): the legacy positional init_scale
            device, init_scale = "cpu", float(device)
        if growth_factor <= 1.0:
            raise ValueError(f"GradScaler: growth_factor must be > 1, got {growth_factor}")
        if not 0.0 < backoff_factor < 1.0:
            raise ValueError(f"GradScaler: backoff_factor must be in (0, 1), got {backoff_factor}")
        if growth_interval <= 0 or not isinstance(growth_interval, int):
            raise ValueError(f"GradScaler: growth_interval must be a positive int, got {growth_interval}")
        self._device = device
        self._enabled = bool(enabled)
        self._init_scale = float(init_scale)
        self._growth_factor = float(growth_factor)
        self._backoff_factor = float(backoff_factor)
        self._growth_interval = growth_interval
        self._scale: Tensor | None = None  # float32 0-d, made lazily as PyTorch does
        self._growth_tracker = 0
        self._per_optimizer: dict[int, dict[str, Any]] = {}

    def is_enabled(self) -> bool:
        return self._enabled

    def _get_scale_tensor(self) -> Tensor:
        if self._scale is None:
            from .creation import tensor
            self._scale = tensor(self._init_scale, dtype=dt.float32)
        return self._scale

    def _opt_state(self, optimizer) -> dict[str, Any]:
        return self._per_optimizer.setdefault(id(optimizer), {"stage": _READY, "found_inf": None})

    def scale(self, outputs):
        """outputs * scale: a tensor, or tensors nested in lists, tuples and dicts."""
        if not self._enabled:
            return outputs
        s = self._get_scale_tensor()

        def apply(x):
            if isinstance(x, Tensor):
                return x * s
            if isinstance(x, (list, tuple)):
                return type(x)(apply(v) for v in x)
            if isinstance(x, dict):
                return {k: apply(v) for k, v in x.items()}
            raise TypeError(f"GradScaler.scale: outputs must be tensors (or lists/tuples/dicts of them), "
                            f"got {type(x).__name__}")
        return apply(outputs)

    def unscale_(self, optimizer) -> None:
        """Divide the optimizer's gradients by the scale in place and record whether any was inf/NaN."""
        if not self._enabled:
            return
        state = self._opt_state(optimizer)
        if state["stage"] == _UNSCALED:
            return
        if state["stage"] == _STEPPED:
            raise RuntimeError("GradScaler.unscale_: called after step() for this optimizer. Hint: call "
                               "update() first, once per iteration")
        scale = self._get_scale_tensor()
        with no_grad():
            inv = (1.0 / scale.double()).float()  # as PyTorch: the reciprocal rounded from float64
            checks = []
            for group in optimizer.param_groups:
                for p in group["params"]:
                    g = p.grad
                    if g is None:
                        continue
                    if g.numel():
                        checks.append(g.abs().amax().float())  # inf/NaN exactly when g holds one
                    g.mul_(inv if g.dtype is dt.float32 else inv.to(g.dtype))
            if checks:
                from .ops import isfinite, stack
                found = (~isfinite(stack(checks).sum())).float()
            else:
                from .creation import tensor
                found = tensor(0.0)
        state["found_inf"] = found
        state["stage"] = _UNSCALED

    def step(self, optimizer, *args, **kwargs):
        """unscale_ (if not done yet), then optimizer.step() unless a gradient was inf/NaN.
        Returns optimizer.step()'s return value, or None when the step is skipped."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise RuntimeError("GradScaler.step: closure use is not supported")
        state = self._opt_state(optimizer)
        if state["stage"] == _STEPPED:
            raise RuntimeError("GradScaler.step: step() has already been called since the last update()")
        if state["stage"] == _READY:
            self.unscale_(optimizer)
        ret = None
        if not state["found_inf"].item():
            ret = optimizer.step(*args, **kwargs)
        state["stage"] = _STEPPED
        return ret

    def update(self, new_scale: float | Tensor | None = None) -> None:
        """Set the scale for the next iteration: backoff after an inf/NaN, growth after growth_interval
        clean steps (or `new_scale` if given)."""
        if not self._enabled:
            return
        scale = self._get_scale_tensor()
        from .creation import tensor
        if new_scale is not None:
            self._scale = tensor(float(new_scale), dtype=dt.float32)
        else:
            found = [s["found_inf"] for s in self._per_optimizer.values() if s["found_inf"] is not None]
            if not found:
                raise RuntimeError("GradScaler.update: no inf checks were recorded prior to update(). Hint: "
                                   "call scaler.step(optimizer) (or unscale_) first")
            if any(f.item() for f in found):
                self._scale = scale * self._backoff_factor
                self._growth_tracker = 0
            else:
                self._growth_tracker += 1
                if self._growth_tracker == self._growth_interval:
                    grown = scale * self._growth_factor
                    if grown.isfinite().item():
                        self._scale = grown
                    self._growth_tracker = 0
        self._per_optimizer = {}

    def get_scale(self) -> float:
        """The current scale as a Python float (1.0 when disabled)."""
        if not self._enabled:
            return 1.0
        return self._init_scale if self._scale is None else float(self._scale.item())

    def get_growth_factor(self) -> float:
        return self._growth_factor

    def get_backoff_factor(self) -> float:
        return self._backoff_factor

    def get_growth_interval(self) -> int:
        return self._growth_interval

    def state_dict(self) -> dict[str, Any]:
        """PyTorch's keys: scale, growth_factor, backoff_factor, growth_interval, _growth_tracker."""
        if not self._enabled:
            return {}
        return {"scale": self.get_scale(), "growth_factor": self._growth_factor,
                "backoff_factor": self._backoff_factor, "growth_interval": self._growth_interval,
                "_growth_tracker": self._growth_tracker}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if not self._enabled:
            return
        if not state_dict:
            raise RuntimeError("GradScaler.load_state_dict: the state dict is empty (saved from a disabled "
                               "GradScaler?)")
        from .creation import tensor
        self._init_scale = float(state_dict["scale"])
        self._scale = tensor(self._init_scale, dtype=dt.float32)
        self._growth_factor = float(state_dict["growth_factor"])
        self._backoff_factor = float(state_dict["backoff_factor"])
        self._growth_interval = int(state_dict["growth_interval"])
        self._growth_tracker = int(state_dict["_growth_tracker"])


__all__ = ["autocast", "GradScaler", "is_autocast_enabled", "get_autocast_dtype", "float32_inputs",
           "low_precision_inputs", "cast_pair"]
