"""TrainConfig: every setting of a training run (`ember train` flags and run.toml keys are its fields)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

from ..errors import EmberError

MODEL_NAMES = ("mlp", "convnet", "resnet", "lstm", "gpt")
DATA_NAMES = ("mnist", "cifar10", "shakespeare", "stdlib")
OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULERS = ("none", "cosine", "linear", "step", "onecycle")
AMP_MODES = ("off", "fp16", "bf16")


class TrainError(EmberError, ValueError):
    """A run that cannot start as asked (bad setting, missing data, model/data mismatch). The message is
    one line saying what to do; `ember train` prints it and exits with status 2."""


@dataclass(frozen=True)
class TrainConfig:
    """A training run. None means "the default for this model/data" (resolved by the trainer).

    data: a name in DATA_NAMES or a path to a text file (character-level language modelling).
    steps / epochs: how long to train (at most one of them; default 500 steps).
    eval_every / save_every: in steps; 0 turns evaluation / periodic checkpoints off.
    model_config: overrides of the model config's fields (e.g. {"n_layer": 2})."""

    model: str = "gpt"
    data: str = "stdlib"
    data_dir: str | None = None
    download: bool = False
    steps: int | None = None
    epochs: int | None = None
    batch_size: int | None = None
    block_size: int | None = None
    lr: float | None = None
    weight_decay: float | None = None
    optimizer: str = "adamw"
    scheduler: str = "cosine"
    warmup_steps: int = 0
    amp: str = "off"
    grad_clip: float | None = 1.0
    seed: int = 0
    out: str | None = None
    resume: bool = False
    eval_every: int = 100
    eval_batches: int = 20
    save_every: int | None = None
    log_every: int = 1
    sample_tokens: int = 200
    progress: bool = True
    ddp: bool = False
    zero: int = 0
    compress: str | None = None
    compile: bool = False
    model_config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        def bad(name, want):
            raise TrainError(f"--{name.replace('_', '-')}: {want}, got {getattr(self, name)!r}")

        if self.model not in MODEL_NAMES:
            bad("model", f"expected one of {', '.join(MODEL_NAMES)}")
        if not isinstance(self.data, str) or not self.data:
            bad("data", f"expected one of {', '.join(DATA_NAMES)} or a path to a text file")
        for name, choices in (("optimizer", OPTIMIZERS), ("scheduler", SCHEDULERS), ("amp", AMP_MODES)):
            if getattr(self, name) not in choices:
                bad(name, f"expected one of {', '.join(choices)}")
        if self.steps is not None and self.epochs is not None:
            raise TrainError("--steps and --epochs: give at most one of them")
        for name in ("steps", "epochs", "batch_size", "block_size"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                bad(name, "expected a positive integer")
        for name in ("warmup_steps", "eval_every", "eval_batches", "log_every", "sample_tokens", "seed"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                bad(name, "expected a non-negative integer")
        if self.save_every is not None and (not isinstance(self.save_every, int) or self.save_every < 0):
            bad("save_every", "expected a non-negative integer")
        for name in ("lr", "weight_decay", "grad_clip"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0
                                  or (name == "lr" and v == 0)):
                bad(name, "expected a positive number")
        if self.log_every < 1:
            bad("log_every", "expected a positive integer")
        if not isinstance(self.model_config, dict):
            bad("model_config", "expected a table of model config fields")
        if self.compile and (self.amp == "fp16" or self.ddp or self.zero):
            raise TrainError("--compile: the compiled step covers single-process training with --amp off or "
                             "bf16; fp16 loss scaling (its inf check reads values) and --ddp/--zero (collectives) "
                             "would run eagerly")
        from .parallel import validate
        validate(self)

    @property
    def run_dir(self) -> str:
        """Where metrics, plots and the checkpoint go (default runs/<model>-<data name>)."""
        if self.out:
            return self.out
        data = os.path.splitext(os.path.basename(self.data.rstrip("/")))[0] or "data"
        return os.path.join("runs", f"{self.model}-{data}")

    def to_dict(self) -> dict:
        """JSON-safe dict of the fields (stored in the checkpoint's meta.json)."""
        return dataclasses.asdict(self)


def config_keys() -> list[str]:
    """The field names a run.toml may use."""
    return [f.name for f in dataclasses.fields(TrainConfig)]
