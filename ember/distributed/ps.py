"""A parameter server (Li et al. 2014) with BSP, ASP and stale-synchronous (SSP) consistency.

One job holds S server ranks (0..S-1) and W worker ranks (S..S+W-1). Parameters are sharded
over servers by key (round robin in registration order). Workers `pull()` their model's
parameters, compute gradients, `push()` them and so advance their clock; servers apply the
optimizer. Under SSP with bound s, clock c's gradients are applied once all W workers pushed
them (so the result does not depend on arrival order), and a worker at clock c may read the
parameters only when they include every update up to clock c - s: it never computes on
parameters more than s clocks stale. s = 0 is BSP (synchronous data parallelism); ASP
applies each push at once and never waits. Every pull served is logged as (worker, clock,
version) so the bound can be checked.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import dtype as dt
from ..autograd import no_grad
from ..creation import empty, tensor, zeros
from ..nn.module import Module
from ..ops import cat
from . import comm

HEADER, PULL, PUSH, STOP, PARAMS = 10, 11, 12, 13, 14  # a header's tag, its kinds, data tags


@dataclass(frozen=True)
class PSConfig:
    """servers: how many ranks serve; consistency: 'bsp', 'ssp' or 'asp'; staleness: SSP's bound s."""

    servers: int = 1
    consistency: str = "ssp"
    staleness: int = 1

    def __post_init__(self):
        if self.consistency not in ("bsp", "ssp", "asp"):
            raise ValueError(f"PSConfig.consistency must be 'bsp', 'ssp' or 'asp', got {self.consistency!r}")
        if self.staleness < 0:
            raise ValueError(f"PSConfig.staleness must be >= 0, got {self.staleness}")
        if self.servers < 1:
            raise ValueError(f"PSConfig.servers must be >= 1, got {self.servers}")

    @property
    def bound(self) -> int | None:
        return {"bsp": 0, "ssp": self.staleness, "asp": None}[self.consistency]


def _shards(model: Module, servers: int) -> list[list]:
    params = [p for p in model.parameters() if p.requires_grad]
    return [params[i::servers] for i in range(servers)]


def _flat(ts) -> comm.Tensor:
    return cat([t.reshape(-1) for t in ts]).contiguous()


def is_server(config: PSConfig) -> bool:
    return comm.get_rank() < config.servers


class ParameterServer:
    """Runs on a server rank: holds its shard of the parameters and the optimizer for it."""

    def __init__(self, model: Module, optimizer_fn, config: PSConfig):
        comm.init()
        self.config = config
        self.workers = comm.get_world_size() - config.servers
        if self.workers < 1:
            raise ValueError(f"ParameterServer: {config.servers} servers leave no workers in a job of "
                             f"{comm.get_world_size()} ranks")
        self.params = _shards(model, config.servers)[comm.get_rank()]
        self.numel = sum(p.numel() for p in self.params)
        self.optimizer = optimizer_fn(self.params)
        self.version = 0  # clocks fully applied
        self.clock = [0] * self.workers  # gradients pushed by each worker
        self.pending: dict = {}  # clock -> summed gradient and count
        self.waiting = []  # (worker, clock) pulls not yet answered
        self.log: list = []  # (worker, clock, version) for every pull served

    def serve(self) -> list:
        """Answer pulls and apply pushes until every worker has stopped; returns the pull log."""
        stopped = 0
        header = zeros(2, dtype=dt.int64)
        while stopped < self.workers:
            src = comm.recv_any(header, tag=HEADER)
            kind, clock = int(header[0].item()), int(header[1].item())
            w = src - self.config.servers
            if kind == STOP:
                stopped += 1
            elif kind == PUSH:
                grad = empty(self.numel, dtype=self.params[0].dtype)
                comm.recv(grad, src, tag=PUSH)
                self._apply(w, clock, grad)
            else:
                self.waiting.append((w, clock))
            self._answer()
        return self.log

    def _apply(self, w: int, clock: int, grad) -> None:
        self.clock[w] = clock + 1
        if self.config.bound is None:  # ASP: every push is a step
            self._step(grad / self.workers)
            self.version += 1
            return
        total, count = self.pending.get(clock, (None, 0))
        self.pending[clock] = (grad if total is None else total + grad, count + 1)
        while self.version in self.pending and self.pending[self.version][1] == self.workers:
            self._step(self.pending.pop(self.version)[0] / self.workers)
            self.version += 1

    def _step(self, flat) -> None:
        off = 0
        for p in self.params:
            p.grad = flat[off:off + p.numel()].reshape(p.shape).clone()
            off += p.numel()
        self.optimizer.step()

    def _answer(self) -> None:
        bound = self.config.bound
        still = []
        for w, clock in self.waiting:
            if bound is not None and self.version < clock - bound:
                still.append((w, clock))
                continue
            staleness = clock - self.version if bound is not None else max(0, clock - min(self.clock))
            self.log.append((w, clock, self.version, staleness))
            with no_grad():
                comm.send(_flat(self.params), w + self.config.servers, tag=PARAMS)
        self.waiting = still


class PSWorker:
    """Runs on a worker rank: `pull()` before computing, `push()` after backward, `close()` at the end."""

    def __init__(self, model: Module, config: PSConfig):
        comm.init()
        self.model, self.config = model, config
        self.shards = _shards(model, config.servers)
        self.clock = 0
        self.index = comm.get_rank() - config.servers

    def pull(self) -> None:
        """Copy the servers' current parameters into the model (waits as SSP requires)."""
        for s in range(len(self.shards)):
            comm.send(tensor([PULL, self.clock], dtype=dt.int64), s, tag=HEADER)
        for s, params in enumerate(self.shards):
            flat = empty(sum(p.numel() for p in params), dtype=params[0].dtype)
            comm.recv(flat, s, tag=PARAMS)
            off = 0
            with no_grad():
                for p in params:
                    p.copy_(flat[off:off + p.numel()].reshape(p.shape))
                    off += p.numel()

    def push(self) -> None:
        """Send this step's gradients to their servers and advance the clock."""
        for s, params in enumerate(self.shards):
            comm.send(tensor([PUSH, self.clock], dtype=dt.int64), s, tag=HEADER)
            with no_grad():
                g = _flat([p.grad if p.grad is not None else zeros(p.shape, dtype=p.dtype) for p in params])
            comm.send(g, s, tag=PUSH)
        self.clock += 1

    def close(self) -> None:
        for s in range(self.config.servers):
            comm.send(tensor([STOP, self.clock], dtype=dt.int64), s, tag=HEADER)
