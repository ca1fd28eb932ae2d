"""Module: the base of every layer — a tree of submodules holding Parameters and buffers.

Attributes that are Parameters, Modules or registered buffers are tracked in ordered
dicts, so `named_parameters()` and `state_dict()` walk the tree in registration order with
PyTorch's key names ("layers.0.weight"); `load_state_dict` copies values back in place.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable, Iterator

from .. import dtype as dt
from ..autograd import no_grad
from ..errors import CheckpointError, fmt_shape
from ..tensor import Tensor
from .parameter import Buffer, Parameter

_hook_ids = itertools.count()


class RemovableHandle:
    """Returned by hook registration; `remove()` (or leaving a `with` block) unregisters the hook."""

    def __init__(self, hooks: dict, key: int):
        self._hooks, self.id = hooks, key

    def remove(self) -> None:
        self._hooks.pop(self.id, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def _swap_data(t: Tensor, new: Tensor) -> None:
    """Make `t` hold `new`'s storage and dtype, keeping its identity (what torch's `p.data = x` does).
    Module.to() uses it so optimizers holding the Parameter objects see the change."""
    t._data, t.dtype, t.device = new._data, new.dtype, new.device
    t._vc[0] += 1


def _addindent(s: str, n: int) -> str:
    lines = s.split("\n")
    if len(lines) == 1:
        return s
    return lines[0] + "\n" + "\n".join(" " * n + line for line in lines[1:])


class Module:
    """Base class of layers and models. Subclasses set attributes in `__init__` and define `forward`.

    `module(*args)` runs forward pre-hooks, `forward`, then forward hooks.
    """

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers_set", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "_forward_hooks_with_kwargs", set())
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())
        object.__setattr__(self, "_forward_pre_hooks_with_kwargs", set())

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} is missing the required `forward` function")

    # --- registration ---------------------------------------------------------------------------
    def _check_name(self, kind: str, name: str) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"cannot assign {kind} before Module.__init__() call")
        if not isinstance(name, str):
            raise TypeError(f"{kind} name should be a string, got {type(name).__name__}")
        if "." in name or name == "":
            raise KeyError(f"{kind} name can't contain \".\" or be empty, got {name!r}")

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Add a Parameter (or a None placeholder, as an optional bias) under `name`."""
        self._check_name("parameter", name)
        if hasattr(self, name) and name not in self._parameters:
            raise KeyError(f"attribute {name!r} already exists")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign {type(param).__name__} object to parameter {name!r} "
                            "(ember.nn.Parameter or None required)")
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Add a tensor that is state but not learnable (running means); non-persistent buffers are
        left out of state_dict."""
        self._check_name("buffer", name)
        if hasattr(self, name) and name not in self._buffers:
            raise KeyError(f"attribute {name!r} already exists")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign {type(tensor).__name__} object to buffer {name!r} "
                            "(ember Tensor or None required)")
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers_set.discard(name)
        else:
            self._non_persistent_buffers_set.add(name)

    def register_module(self, name: str, module: Module | None) -> None:
        """Add a child module under `name`."""
        self._check_name("module", name)
        if hasattr(self, name) and name not in self._modules:
            raise KeyError(f"attribute {name!r} already exists")
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        self._modules[name] = module

    add_module = register_module

    def __setattr__(self, name: str, value) -> None:
        d = self.__dict__
        params, buffers, modules = d.get("_parameters"), d.get("_buffers"), d.get("_modules")

        def drop(*dicts):
            for x in dicts:
                if x is not None:
                    x.pop(name, None)
            d.pop(name, None)

        if isinstance(value, Parameter):
            if params is None:
                raise AttributeError("cannot assign parameters before Module.__init__() call")
            drop(buffers, modules)
            self._non_persistent_buffers_set.discard(name)
            self.register_parameter(name, value)
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as parameter {name!r} "
                                "(ember.nn.Parameter or None expected)")
            params[name] = None
        elif isinstance(value, Module):
            if modules is None:
                raise AttributeError("cannot assign module before Module.__init__() call")
            drop(params, buffers)
            self.register_module(name, value)
        elif modules is not None and name in modules:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as child module {name!r} "
                                "(ember.nn.Module or None expected)")
            modules[name] = None
        elif isinstance(value, Buffer):
            drop(params, modules)
            self.register_buffer(name, value.data, value.persistent)
        elif buffers is not None and name in buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign {type(value).__name__} as buffer {name!r} "
                                "(ember Tensor or None expected)")
            buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str):
        # only called when normal lookup fails: look in the registries
        d = self.__dict__
        for key in ("_parameters", "_buffers", "_modules"):
            reg = d.get(key)
            if reg is not None and name in reg:
                return reg[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name: str) -> None:
        for key in ("_parameters", "_buffers", "_modules"):
            reg = self.__dict__.get(key)
            if reg is not None and name in reg:
                del reg[name]
                self._non_persistent_buffers_set.discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self):
        keys = list(super().__dir__()) + list(self._parameters) + list(self._buffers) + list(self._modules)
        return sorted(set(keys))

    # --- traversal ------------------------------------------------------------------------------
    def named_modules(self, memo: set | None = None, prefix: str = "",
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Module]]:
        """(name, module) for self and every descendant, depth first; a module reachable twice is
        listed once."""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is None:
                continue
            yield from m.named_modules(memo, prefix + ("." if prefix else "") + name, remove_duplicate)

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        seen = set()
        for name, m in self._modules.items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield name, m

    def children(self) -> Iterator[Module]:
        for _, m in self.named_children():
            yield m

    def _named_members(self, get, prefix: str, recurse: bool, remove_duplicate: bool):
        seen = set()
        if recurse:
            mods = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate)
        else:
            mods = [(prefix, self)]
        for mod_prefix, m in mods:
            for name, v in get(m):
                if v is None:
                    continue
                if remove_duplicate:
                    if id(v) in seen:
                        continue
                    seen.add(id(v))
                yield mod_prefix + ("." if mod_prefix else "") + name, v

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, Parameter) in registration order; a shared Parameter is listed once."""
        return self._named_members(lambda m: m._parameters.items(), prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Tensor]]:
        return self._named_members(lambda m: m._buffers.items(), prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def get_submodule(self, target: str) -> Module:
        """The descendant at dotted path `target` ("" is self)."""
        m = self
        for part in target.split(".") if target else []:
            if part not in m._modules or m._modules[part] is None:
                raise AttributeError(f"{type(m).__name__} has no submodule {part!r} (looking up {target!r})")
            m = m._modules[part]
        return m

    def get_parameter(self, target: str) -> Parameter:
        mod, _, name = target.rpartition(".")
        m = self.get_submodule(mod)
        if name not in m._parameters:
            raise AttributeError(f"{type(m).__name__} has no parameter {name!r}")
        return m._parameters[name]

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Total element count of the (distinct) parameters. ember-specific convenience."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    # --- modes and bulk changes -----------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Set training mode (dropout active, batch norm uses batch statistics) on the whole tree."""
        if not isinstance(mode, bool):
            raise ValueError(f"train(): mode is expected to be a bool, got {type(mode).__name__}")
        object.__setattr__(self, "training", mode)
        for m in self.children():
            m.train(mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset every parameter's `.grad` (to None, or to zeros in place)."""
        for p in self.parameters():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad = p.grad.detach()
                p.grad.zero_()

    def apply(self, fn: Callable[[Module], None]) -> Module:
        """Call `fn` on every submodule (children first), then on self; e.g. custom initialisation."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    def _apply(self, fn: Callable[[Tensor], Tensor]) -> Module:
        """Replace every parameter's and buffer's storage with `fn(tensor)`, keeping the objects."""
        for m in self.modules():
            with no_grad():
                for p in m._parameters.values():
                    if p is None:
                        continue
                    new = fn(p.detach())
                    if new._data is not p._data:
                        _swap_data(p, new)
                        if p.grad is not None:
                            g = fn(p.grad.detach())
                            p.grad = g if g.dtype is p.dtype else g.to(p.dtype)
                for b in m._buffers.values():
                    if b is not None:
                        new = fn(b)
                        if new._data is not b._data:
                            _swap_data(b, new)
        return self

    def to(self, *args, dtype=None, device=None) -> Module:
        """`to(dtype)` / `to(device)`: cast floating parameters and buffers in place (Parameter
        objects keep their identity, so an optimizer built earlier still holds them)."""
        for a in args:
            if isinstance(a, Tensor):
                dtype, device = a.dtype, a.device
            elif isinstance(a, (dt.DType, type)) or (isinstance(a, str) and a in dt._BY_NAME):
                dtype = a
            else:
                device = a
        if dtype is not None:
            dtype = dt.get_dtype(dtype)
            if not dtype.is_floating_point:
                raise TypeError(f"Module.to only accepts floating point dtypes, but got desired "
                                f"dtype={dtype}")

        def convert(t: Tensor) -> Tensor:
            out = t
            if device is not None:
                out = out.to(device=device)
            if dtype is not None and out.dtype.is_floating_point:
                out = out.to(dtype)
            return out
        return self._apply(convert)

    def float(self) -> Module:
        return self.to(dt.float32)

    def double(self) -> Module:
        return self.to(dt.float64)

    def half(self) -> Module:
        return self.to(dt.float16)

    def bfloat16(self) -> Module:
        return self.to(dt.bfloat16)

    def cpu(self) -> Module:
        return self.to(device="cpu")

    # --- state dict -----------------------------------------------------------------------------
    def _save_to_state_dict(self, destination: dict, prefix: str, keep_vars: bool) -> None:
        for name, p in self._parameters.items():
            if p is not None:
                destination[prefix + name] = p if keep_vars else p.detach()
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent_buffers_set:
                destination[prefix + name] = b if keep_vars else b.detach()

    def state_dict(self, destination: dict | None = None, prefix: str = "",
                   keep_vars: bool = False) -> OrderedDict:
        """Parameters and persistent buffers by dotted name, detached but sharing storage."""
        if destination is None:
            destination = OrderedDict()
        self._save_to_state_dict(destination, prefix, keep_vars)
        for name, m in self._modules.items():
            if m is not None:
                m.state_dict(destination=destination, prefix=prefix + name + ".", keep_vars=keep_vars)
        return destination

    def _load_from_state_dict(self, state_dict: dict, prefix: str, missing_keys: list,
                              error_msgs: list) -> None:
        """Copy this module's own entries (not its children's) from `state_dict`, noting what is missing
        or does not fit. Layers with legacy checkpoint formats override it."""
        persistent = {k: v for k, v in self._buffers.items() if k not in self._non_persistent_buffers_set}
        local = {k: v for k, v in itertools.chain(self._parameters.items(), persistent.items())
                 if v is not None}
        for name, target in local.items():
            key = prefix + name
            if key not in state_dict:
                missing_keys.append(key)
                continue
            value = state_dict[key]
            if not isinstance(value, Tensor):
                from ..creation import as_tensor
                try:
                    value = as_tensor(value)
                except Exception:
                    error_msgs.append(f'while copying the parameter named "{key}", expected a tensor, '
                                      f"got {type(value).__name__}")
                    continue
            if value.shape != target.shape:
                error_msgs.append(f"size mismatch for {key}: copying a param with shape "
                                  f"{fmt_shape(value.shape)} from checkpoint, the shape in current model is "
                                  f"{fmt_shape(target.shape)}.")
                continue
            with no_grad():
                target.copy_(value.detach())

    def load_state_dict(self, state_dict: dict, strict: bool = True) -> tuple[list, list]:
        """Copy values from `state_dict` (ember Tensors or arrays) into this module's parameters and
        buffers in place. Returns (missing_keys, unexpected_keys); with `strict`, any missing,
        unexpected or mis-shaped key raises CheckpointError naming them all."""
        if not isinstance(state_dict, dict):
            raise TypeError(f"expected state_dict to be dict-like, got {type(state_dict).__name__}")
        missing: list = []
        errors: list = []

        def load(m: Module, prefix: str) -> None:
            m._load_from_state_dict(state_dict, prefix, missing, errors)
            for name, child in m._modules.items():
                if child is not None:
                    load(child, prefix + name + ".")
        load(self, "")
        # a key is unexpected when no module in the tree owns it
        owned = set(self.state_dict().keys())
        unexpected = [k for k in state_dict if k not in owned]
        if strict:
            if unexpected:
                errors.insert(0, "Unexpected key(s) in state_dict: " + ", ".join(f'"{k}"' for k in unexpected)
                              + ".")
            if missing:
                errors.insert(0, "Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing)
                              + ".")
        if errors:
            raise CheckpointError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t"
                                  + "\n\t".join(errors))
        return missing, unexpected

    # --- calling and hooks ----------------------------------------------------------------------
    def register_forward_pre_hook(self, hook: Callable, *, prepend: bool = False,
                                  with_kwargs: bool = False) -> RemovableHandle:
        """`hook(module, args)` (or `hook(module, args, kwargs)` with_kwargs) runs before forward; a
        non-None return replaces args (or (args, kwargs))."""
        key = next(_hook_ids)
        self._forward_pre_hooks[key] = hook
        if with_kwargs:
            self._forward_pre_hooks_with_kwargs.add(key)
        if prepend:
            self._forward_pre_hooks.move_to_end(key, last=False)
        return RemovableHandle(self._forward_pre_hooks, key)

    def register_forward_hook(self, hook: Callable, *, prepend: bool = False,
                              with_kwargs: bool = False) -> RemovableHandle:
        """`hook(module, args, output)` (or `hook(module, args, kwargs, output)`) runs after forward; a
        non-None return replaces the output."""
        key = next(_hook_ids)
        self._forward_hooks[key] = hook
        if with_kwargs:
            self._forward_hooks_with_kwargs.add(key)
        if prepend:
            self._forward_hooks.move_to_end(key, last=False)
        return RemovableHandle(self._forward_hooks, key)

    def __call__(self, *args, **kwargs):
        if not self._forward_pre_hooks and not self._forward_hooks:
            return self.forward(*args, **kwargs)
        for key, hook in list(self._forward_pre_hooks.items()):
            if key in self._forward_pre_hooks_with_kwargs:
                res = hook(self, args, kwargs)
                if res is not None:
                    args, kwargs = res
            else:
                res = hook(self, args)
                if res is not None:
                    args = res if isinstance(res, tuple) else (res,)
        out = self.forward(*args, **kwargs)
        for key, hook in list(self._forward_hooks.items()):
            if key in self._forward_hooks_with_kwargs:
                res = hook(self, args, kwargs, out)
            else:
                res = hook(self, args, out)
            if res is not None:
                out = res
        return out

    # --- printing -------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The text inside this module's parentheses in repr (layers override it)."""
        return ""

    def _get_name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        extra = self.extra_repr()
        lines = extra.split("\n") if extra else []
        for name, m in self._modules.items():
            lines.append(f"({name}): " + _addindent(repr(m), 2))
        main = self._get_name() + "("
        if lines:
            if len(lines) == 1 and not self._modules:
                main += lines[0]
            else:
                main += "\n  " + "\n  ".join(lines) + "\n"
        return main + ")"
