"""ZeRO (Rajbhandari et al. 2020): shard optimizer state (stage 1), gradients (2) and parameters (3).

The model's parameters are grouped into units, one per module that owns parameters. Each
unit is a flat buffer padded to a multiple of N ranks; rank r owns the contiguous slice
[r*S, (r+1)*S). The optimizer only ever sees those shards ("master" parameters), so its
state is 1/N of the whole. After backward, gradients are reduce-scattered to their owners;
after the step, the updated shards are all-gathered back (stages 1-2) or gathered lazily
before each unit's forward and backward (stage 3).

Model-state bytes per rank (Ψ parameters, Adam):
    float32:          stage 1: 4Ψ + 4Ψ + 8Ψ/N    stage 2: 4Ψ + 12Ψ/N    stage 3: 16Ψ/N
    float16 + master: stage 1: 2Ψ + 2Ψ + 12Ψ/N   stage 2: 2Ψ + 14Ψ/N    stage 3: 16Ψ/N
Communication per step: 2(N-1)/N·Ψ·b (stages 1-2), 3(N-1)/N·Ψ·b (stage 3).
Only elementwise optimizers (SGD, Adam, AdamW, RMSprop, Adagrad) give the same result on
shards as on whole tensors; LARS and LAMB need per-layer norms and are refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import dtype as dt
from ..autograd import is_grad_enabled, no_grad
from ..creation import empty, zeros
from ..nn.module import Module
from ..nn.parameter import Parameter
from ..ops import cat
from ..tensor import Tensor
from . import comm


@dataclass(frozen=True)
class ZeroConfig:
    """stage: 1, 2 or 3. offload_optimizer: keep optimizer state in host memory (already the case on
    cpu; meaningful for cuda tensors)."""

    stage: int = 1
    offload_optimizer: bool = False

    def __post_init__(self):
        if self.stage not in (1, 2, 3):
            raise ValueError(f"ZeroConfig.stage must be 1, 2 or 3, got {self.stage}")


def _point(p: Tensor, storage: Tensor) -> None:
    """Make parameter `p` use `storage` without a version bump: gathering and releasing a shard
    changes where the values live, not the values, so autograd's saved-tensor checks stay valid."""
    p._data = storage._data


class FlatUnit:
    """The parameters of one module as one padded flat buffer, sharded over the group."""

    def __init__(self, name: str, module: Module, params: list, world: int, rank: int, stage: int):
        self.name, self.module, self.params = name, module, params
        self.names = [n for n, p in module.named_parameters(recurse=False) if p.requires_grad]
        self.shapes = [p.shape for p in params]
        self.sizes = [p.numel() for p in params]
        self.numel = sum(self.sizes)
        self.shard = -(-self.numel // world)  # ceil: the last shard is padded
        self.padded = self.shard * world
        self.rank, self.world, self.stage = rank, world, stage
        self.dtype = params[0].dtype
        for p in params:
            if p.dtype is not self.dtype:
                raise ValueError(f"ZeRO: unit {name!r} mixes dtypes {p.dtype} and {self.dtype}")
        with no_grad():
            full = cat([p.detach().reshape(-1) for p in params] +
                       [zeros(self.padded - self.numel, dtype=self.dtype)]).contiguous()
        lo = rank * self.shard
        mixed = self.dtype in dt.LOW_PRECISION
        if stage < 3:
            self.full = full
            self._bind(full)
            local = full[lo:lo + self.shard]
        else:
            self.full = None
            local = full[lo:lo + self.shard].clone()
            self._release()
        # the optimizer's parameter: fp32 master copy for low-precision models, else the shard itself
        self.local = local
        self.mixed = mixed
        self.master = Parameter(local.float().clone() if mixed else local)
        self.pending = set()
        self.work = None
        self.inflight = None  # a prefetching all-gather (stage 3)

    def _bind(self, full: Tensor) -> None:
        """Make each parameter a view into `full`."""
        off = 0
        for p, n, s in zip(self.params, self.sizes, self.shapes):
            _point(p, full[off:off + n].reshape(s))
            off += n

    def _release(self) -> None:
        for p in self.params:
            _point(p, empty(0, dtype=self.dtype))
        self.full = None

    def prefetch(self, group) -> None:
        """Start gathering this unit's parameters in the background (stage 3)."""
        if self.full is None and self.work is None and self.inflight is None:
            full = empty(self.padded, dtype=self.dtype)
            self.inflight = (comm.all_gather_into_tensor(full, self.local.contiguous(), group, async_op=True), full)

    def gather(self, group) -> None:
        """All-gather the shards into a full buffer and point the parameters at it (stage 3)."""
        if self.full is not None:
            return
        self.prefetch(group)
        work, full = self.inflight
        work.wait()
        self.inflight = None
        self.full = full
        self._bind(full)

    def flat_grad(self) -> Tensor:
        with no_grad():
            parts = [(p.grad if p.grad is not None else zeros(p.shape, dtype=self.dtype)).reshape(-1)
                     for p in self.params]
            return cat(parts + [zeros(self.padded - self.numel, dtype=self.dtype)]).contiguous()

    def bytes_params(self) -> int:
        held = self.full.nbytes if self.full is not None else self.local.nbytes
        return held


class ZeroDataParallel(Module):
    """Data parallelism with ZeRO sharding. Use it like a model plus its optimizer:

        engine = ZeroDataParallel(model, lambda params: AdamW(params, lr=1e-3), ZeroConfig(stage=2))
        loss = loss_fn(engine(x), y); loss.backward(); engine.step(); engine.zero_grad()

    Gradients are averaged over the group, as in DDP; per-step results equal DDP's.
    """

    def __init__(self, module: Module, optimizer_fn, config: ZeroConfig = ZeroConfig(), group=None):
        super().__init__()
        comm.init()
        self.module = module
        g = group or comm._group(None)
        object.__setattr__(self, "group", g)
        object.__setattr__(self, "config", config)
        with no_grad():
            for t in list(module.parameters()) + list(module.buffers()):
                comm.broadcast(t, 0, g)
        units = []
        for name, m in module.named_modules():
            ps = [p for p in m._parameters.values() if p is not None and p.requires_grad]
            if ps:
                units.append(FlatUnit(name, m, ps, g.size, g.rank, config.stage))
        object.__setattr__(self, "units", units)
        object.__setattr__(self, "_unit_of", {id(p): u for u in units for p in u.params})
        optimizer = optimizer_fn([u.master for u in units])
        if type(optimizer).__name__ in ("LARS", "LAMB"):
            raise ValueError(f"ZeRO: {type(optimizer).__name__} uses per-layer norms, which shards do not have; "
                             "use SGD, Adam, AdamW, RMSprop or Adagrad")
        object.__setattr__(self, "optimizer", optimizer)
        if config.stage >= 2:
            for p in module.parameters():
                if p.requires_grad:
                    p.register_post_accumulate_grad_hook(self._on_grad_ready)
        if config.stage == 3:
            for u in units:
                u.module.register_forward_pre_hook(self._pre_forward(u))
                u.module.register_forward_hook(self._post_forward(u))

    # --- stage 3: gather before forward and backward, free after -----------------------------------
    def _neighbour(self, u: FlatUnit, step: int):
        i = self.units.index(u) + step
        return self.units[i] if 0 <= i < len(self.units) else None

    def _pre_forward(self, u: FlatUnit):
        def hook(module, args):
            u.gather(self.group)
            nxt = self._neighbour(u, +1)  # overlap the next unit's gather with this forward
            if nxt is not None:
                nxt.prefetch(self.group)
        return hook

    def _post_forward(self, u: FlatUnit):
        def hook(module, args, out):
            if is_grad_enabled() and isinstance(out, Tensor) and out.requires_grad:
                # gather again when backward reaches this unit's output; prefetch the one before it
                def regather(grad):
                    u.gather(self.group)
                    prev = self._neighbour(u, -1)
                    if prev is not None:
                        prev.prefetch(self.group)
                out.register_hook(regather)
            u._release()
        return hook

    # --- gradients --------------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        for u in self.units:
            u.pending.clear()
        return self.module(*args, **kwargs)

    def _on_grad_ready(self, p: Tensor) -> None:
        u = self._unit_of.get(id(p))
        if u is None:
            return
        u.pending.add(id(p))
        if len(u.pending) == len(u.params):
            self._reduce_scatter(u, async_op=True)

    def _reduce_scatter(self, u: FlatUnit, async_op: bool) -> None:
        flat = u.flat_grad()
        out = empty(u.shard, dtype=u.dtype)
        u.work = (comm.reduce_scatter_tensor(out, flat, comm.ReduceOp.AVG, self.group, async_op=True), out)
        if self.config.stage >= 2:
            for p in u.params:
                p.grad = None  # only the shard of the gradient stays
        if self.config.stage == 3:
            u._release()
        if not async_op:
            self._collect(u)

    def _collect(self, u: FlatUnit) -> None:
        work, out = u.work
        work.wait()
        u.master.grad = out.float() if u.master.dtype is not out.dtype else out
        u.work = None

    def step(self, max_norm: float | None = None) -> None:
        """Reduce-scatter any gradients not yet sent, update the shards, share the new parameters.

        max_norm: clip the global gradient norm first (the shards are disjoint, so the squared norms
        of the shards sum to the squared norm of the whole gradient)."""
        for u in self.units:
            if u.work is None and self.config.stage == 1:
                self._reduce_scatter(u, async_op=False)
            elif u.work is None:
                # a unit whose parameters got no gradient this step still joins the collective
                self._reduce_scatter(u, async_op=False)
            else:
                self._collect(u)
        if max_norm:
            self._clip(max_norm)
        self.optimizer.step()
        with no_grad():
            for u in self.units:
                if u.mixed:
                    u.local.copy_(u.master)
                if self.config.stage < 3:
                    comm.all_gather_into_tensor(u.full, u.local.clone(), self.group)

    def _clip(self, max_norm: float) -> float:
        with no_grad():
            sq = cat([(u.master.grad.float() ** 2).sum().reshape(1) for u in self.units]).sum().reshape(1)
            comm.all_reduce(sq, comm.ReduceOp.SUM, self.group)
            norm = float(sq.sqrt().item())
            coef = max_norm / (norm + 1e-6)
            if coef < 1:
                for u in self.units:
                    u.master.grad.mul_(coef)
        return norm

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none)
        self.module.zero_grad(set_to_none)

    # --- accounting -------------------------------------------------------------------------------
    def memory_report(self) -> dict:
        """Bytes this rank holds for parameters, gradients and optimizer state (fp32 master copies of a
        low-precision model count as optimizer state, as in the ZeRO paper)."""
        params = sum(u.bytes_params() for u in self.units)
        if self.config.stage == 1:  # full gradients (the reduced shard is transient)
            grads = sum(p.grad.nbytes for p in self.module.parameters() if p.grad is not None)
        else:
            grads = sum(u.master.grad.nbytes for u in self.units if u.master.grad is not None)
            if any(u.mixed for u in self.units):  # the shard counts at the model's precision
                grads = sum(u.shard * u.dtype.itemsize for u in self.units if u.master.grad is not None)
        opt = sum(v.nbytes for s in self.optimizer.state.values() for v in s.values() if isinstance(v, Tensor))
        opt += sum(u.master.nbytes for u in self.units if u.mixed)
        return {"params": params, "grads": grads, "optimizer": opt}

    def num_parameters_total(self) -> int:
        return sum(u.numel for u in self.units)
