"""How `ember train` runs on several ranks: `--ddp`, `--zero 1|2|3`, `--compress SPEC`.

Every rank draws the same global batch (same seed) and trains on its slice of the rows, so a
run on N ranks follows the single-process run at the same --batch-size. Rank 0 alone prints,
writes metrics and (for DDP) the checkpoint; ZeRO runs write sharded checkpoints.
"""

from __future__ import annotations

from .config import TrainConfig, TrainError


class Parallel:
    """This rank's part in the run; world size 1 (and no MPI) unless a parallel flag is given."""

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.enabled = bool(cfg.ddp or cfg.zero or cfg.compress)
        self.rank, self.world = 0, 1
        if self.enabled:
            from .. import distributed as dist
            dist.init()
            self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self.engine = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def check_batch(self, batch_size: int) -> None:
        if batch_size % self.world:
            raise TrainError(f"--batch-size {batch_size} does not split evenly over {self.world} ranks; "
                             f"pass a multiple of {self.world}")

    def shard(self, x, y):
        """This rank's rows of the global batch."""
        if self.world == 1:
            return x, y
        per = x.shape[0] // self.world
        lo = self.rank * per
        return x[lo:lo + per], y[lo:lo + per]

    def wrap(self, model, make_optimizer):
        """(the module to call, the optimizer the scheduler drives, the object whose step() updates)."""
        cfg = self.cfg
        if cfg.zero:
            from ..distributed.zero import ZeroConfig, ZeroDataParallel
            engine = ZeroDataParallel(model, make_optimizer, ZeroConfig(stage=cfg.zero))
            self.engine = engine
            return engine, engine.optimizer, engine
        optimizer = make_optimizer(model.parameters())
        if not self.enabled:
            return model, optimizer, optimizer
        from ..distributed import DistributedDataParallel
        ddp = DistributedDataParallel(model)
        if cfg.compress:
            from ..distributed import compression
            ddp.register_comm_hook(*compression.parse(cfg.compress))
        return ddp, optimizer, optimizer

    def mean(self, value: float) -> float:
        """The average of a number over ranks (the global loss)."""
        if self.world == 1:
            return value
        from .. import distributed as dist
        from ..creation import tensor
        t = tensor([value])
        dist.all_reduce(t, dist.ReduceOp.AVG)
        return float(t.item())


def validate(cfg: TrainConfig) -> None:
    """Combinations the parallel modes do not support, as one-line errors."""
    if cfg.zero not in (0, 1, 2, 3):
        raise TrainError(f"--zero: expected 1, 2 or 3, got {cfg.zero!r}")
    if cfg.zero and cfg.ddp:
        raise TrainError("--ddp and --zero: ZeRO already is data parallel; pass only --zero")
    if cfg.compress and cfg.zero:
        raise TrainError("--compress works with --ddp (a DDP communication hook), not with --zero")
    if cfg.zero and cfg.amp == "fp16":
        raise TrainError("--zero with --amp fp16 is not supported (loss scaling of sharded gradients); "
                         "use --amp bf16")
    if cfg.zero and cfg.resume:
        raise TrainError("--resume with --zero is not supported by `ember train` yet; its sharded "
                         "checkpoint loads with ember.distributed.checkpoint.load_sharded")
    if cfg.compress:
        from ..distributed import compression
        name = cfg.compress.partition(":")[0]
        if name not in ("fp16", "bf16", "topk", "dgc", "powersgd", "terngrad"):
            raise TrainError(f"--compress: expected fp16, bf16, topk:RATIO, dgc:RATIO, powersgd:RANK or terngrad, "
                             f"got {cfg.compress!r}")
        del compression
