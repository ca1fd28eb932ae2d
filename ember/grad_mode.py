"""Grad modes: whether ops record history. The one piece of global autograd state.

`no_grad`, `enable_grad`, `inference_mode` and `set_grad_enabled` work as context managers
and as decorators, as in PyTorch. The dispatcher (autograd.apply) reads `_Mode.enabled`.
"""

from __future__ import annotations

import functools
import inspect


class _Mode:
    enabled = True
    inference = False


class _GradModeContext:
    """Base of no_grad / enable_grad / inference_mode: a context manager and a decorator.

    As in PyTorch, `@no_grad` and `@no_grad()` both decorate; a decorated generator runs
    each step under the mode.
    """

    _value = True
    _inference = False

    def __new__(cls, *args, **kwargs):
        # `@no_grad` without parentheses: the function arrives as the only argument
        if cls._no_arg_decorator and len(args) == 1 and not kwargs and callable(args[0]):
            return cls()(args[0])
        return super().__new__(cls)

    _no_arg_decorator = True

    def __enter__(self):
        self._prev = (_Mode.enabled, _Mode.inference)
        if self._value is not None:
            _Mode.enabled = self._value
        _Mode.inference = self._inference

    def __exit__(self, *exc):
        _Mode.enabled, _Mode.inference = self._prev
        return False

    def clone(self):
        return self.__class__()

    def __call__(self, fn):
        if inspect.isgeneratorfunction(fn):
            @functools.wraps(fn)
            def gen_wrapper(*args, **kwargs):
                gen = fn(*args, **kwargs)
                with self.clone():
                    value = next(gen)
                while True:
                    try:
                        sent = yield value
                    except GeneratorExit:
                        with self.clone():
                            gen.close()
                        raise
                    except BaseException as e:  # forward throw() into the generator
                        with self.clone():
                            value = gen.throw(e)
                        continue
                    with self.clone():
                        value = gen.send(sent)
            return gen_wrapper

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.clone():
                return fn(*args, **kwargs)
        return wrapper


class no_grad(_GradModeContext):
    """Record nothing: ops inside produce tensors without history."""

    _value = False


class enable_grad(_GradModeContext):
    """Record again inside a no_grad region."""

    _value = True


class inference_mode(_GradModeContext):
    """Like no_grad (ember keeps no inference-only tensors); `inference_mode(False)` changes nothing."""

    _no_arg_decorator = False

    def __new__(cls, mode=True):
        if callable(mode):  # `@inference_mode` without parentheses
            return cls(True)(mode)
        return super().__new__(cls)

    def __init__(self, mode: bool = True):
        self.mode = bool(mode)
        self._value = False if self.mode else None
        self._inference = self.mode

    def __enter__(self):
        self._prev = (_Mode.enabled, _Mode.inference)
        if self.mode:
            _Mode.enabled, _Mode.inference = False, True

    def clone(self):
        return inference_mode(self.mode)


class set_grad_enabled(_GradModeContext):
    """Turn recording on or off: as a context manager, a decorator, or called plainly
    (`set_grad_enabled(False)` sets the mode at once, as in PyTorch)."""

    _no_arg_decorator = False

    def __init__(self, mode: bool):
        self.mode = bool(mode)
        self._prev = (_Mode.enabled, _Mode.inference)
        _Mode.enabled = self.mode

    def __enter__(self):
        _Mode.enabled = self.mode

    def __call__(self, fn):
        _Mode.enabled = self._prev[0]  # used as a decorator: undo the switch done by __init__
        return super().__call__(fn)

    def clone(self):
        prev = _Mode.enabled
        c = set_grad_enabled(self.mode)
        _Mode.enabled = prev
        return c


def is_grad_enabled() -> bool:
    """Whether ops record history for autograd now."""
    return _Mode.enabled


def is_inference_mode_enabled() -> bool:
    """Whether an `inference_mode()` region is active."""
    return _Mode.inference
