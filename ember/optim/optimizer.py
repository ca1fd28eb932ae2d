"""The Optimizer base: parameter groups, per-parameter state, zero_grad and (de)serialisation.

Subclasses implement `step()` with in-place ember ops under `no_grad()`. `state_dict()` uses
PyTorch's layout (state keyed by parameter index, `param_groups` holding index lists), so a
checkpoint resumes exactly. ember keeps `state[p]["step"]` as a Python int (PyTorch keeps a
float tensor); `load_state_dict` accepts either. Parameters are updated in place; state tensors
are replaced by new ones each step (one memory pass fewer than updating them in place).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..autograd import enable_grad, no_grad
from ..creation import tensor
from ..tensor import Tensor


class _Required:
    """Marks a hyperparameter that has no default and must be given (like torch's `required`)."""

    def __repr__(self) -> str:
        return "<required parameter>"


required = _Required()


class Optimizer:
    """Base class of every optimizer.

    params: an iterable of tensors, or of dicts `{"params": [...], <option>: value}` (one
    parameter group each; options missing from a group come from `defaults`).
    """

    def __init__(self, params: Iterable[Tensor] | Iterable[dict], defaults: dict[str, Any]):
        self.defaults = dict(defaults)
        self._consts: dict = {}
        self.state: dict[Tensor, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        if isinstance(params, Tensor):
            raise TypeError(f"{type(self).__name__}: params must be an iterable of tensors or dicts, got a "
                            "single Tensor. Hint: pass [tensor] or model.parameters()")
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(g.items()) if k != "params"]
        return "\n".join(lines) + "\n)"

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own options (e.g. a new layer being unfrozen)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"add_param_group: expected a dict, got {type(param_group).__name__}")
        group = dict(param_group)
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"{type(self).__name__} can only optimize Tensors, got {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError(f"{type(self).__name__}: can't optimize a non-leaf Tensor (one "
                                 "computed from others). Hint: optimize the leaf, or "
                                 ".detach().requires_grad_()")
        group["params"] = params
        for key, default in self.defaults.items():
            if default is required and key not in group:
                raise ValueError(f"{type(self).__name__}: parameter group didn't specify a value of required "
                                 f"option {key!r}")
            group.setdefault(key, default)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if len({id(p) for p in params}) != len(params) or any(id(p) in seen for p in params):
            raise ValueError(f"{type(self).__name__}: some parameters appear more than once "
                             "(within a group or in more than one group)")
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset every parameter's gradient: drop it (default) or fill it with zeros."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    if p.grad.grad_fn is not None:
                        p.grad = p.grad.detach()
                    p.grad.zero_()

    def step(self, closure=None):
        """Update the parameters once from their `.grad`; `closure()` re-evaluates the loss if given."""
        raise NotImplementedError(f"{type(self).__name__} must implement step(): the base class only holds "
                                  "parameter groups and state")

    def _const(self, value: float, like: Tensor) -> Tensor:
        """`value` as a 0-d tensor of like's dtype and device, cached: a tensor-tensor op skips the
        type promotion a Python scalar goes through, which costs more than the op on small tensors."""
        key = (value, like.dtype, like.device)
        c = self._consts.get(key)
        if c is None:
            if len(self._consts) > 512:  # schedulers make new lrs every step
                self._consts.clear()
            c = self._consts[key] = tensor(value, dtype=like.dtype, device=like.device)
        return c

    def _closure_loss(self, closure):
        if closure is None:
            return None
        with enable_grad():
            return closure()

    # --- serialisation ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """{"state": {index: {name: value}}, "param_groups": [{option: value, "params": [index]}]}.

        Indices count parameters across groups in order. State tensors are returned by reference,
        as PyTorch does; `load_state_dict` copies them.
        """
        index: dict[int, int] = {}
        groups = []
        for g in self.param_groups:
            packed = {k: v for k, v in g.items() if k != "params"}
            for p in g["params"]:
                index.setdefault(id(p), len(index))
            packed["params"] = [index[id(p)] for p in g["params"]]
            groups.append(packed)
        state = {index[id(p)]: s for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore state and group options saved by `state_dict()` (this optimizer's parameters keep
        their identity; they are matched by position)."""
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{type(self).__name__}.load_state_dict: loaded state dict has "
                             f"{len(saved_groups)} parameter groups, this optimizer has "
                             f"{len(self.param_groups)}")
        for i, (mine, theirs) in enumerate(zip(self.param_groups, saved_groups)):
            if len(mine["params"]) != len(theirs["params"]):
                raise ValueError(f"{type(self).__name__}.load_state_dict: group {i} has "
                                 f"{len(mine['params'])} parameters here but {len(theirs['params'])} in the "
                                 "loaded state dict")
        id_map = {}
        for mine, theirs in zip(self.param_groups, saved_groups):
            id_map.update({int(i): p for i, p in zip(theirs["params"], mine["params"])})
        self.state = {}
        for key, values in state_dict["state"].items():
            p = id_map.get(int(key))
            if p is None:
                continue
            self.state[p] = {name: _restore(name, v, p) for name, v in values.items()}
        new_groups = []
        for mine, theirs in zip(self.param_groups, saved_groups):
            g = {k: v for k, v in theirs.items() if k != "params"}
            g["params"] = mine["params"]
            new_groups.append(g)
        self.param_groups = new_groups


def _restore(name: str, value, param: Tensor):
    """A copy of one saved state value, in the parameter's dtype where it is a float tensor."""
    if name == "step":
        return int(value.item()) if isinstance(value, Tensor) else int(value)
    if isinstance(value, Tensor):
        with no_grad():
            if value.dtype.is_floating_point and value.dtype is not param.dtype:
                return value.to(param.dtype)
            return value.clone()
    return value
