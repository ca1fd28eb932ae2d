"""The training loop behind `ember train`: data -> model -> optimizer/scheduler/AMP -> steps, evaluation,
metrics.jsonl, loss-curve PNG, checkpoints and exact resume, Ctrl-C handling.

A resumed run reproduces the uninterrupted one bit for bit on cpu: the checkpoint holds the weights,
optimizer/scheduler/scaler state, ember's default RNG (dropout) and the data order's position.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .. import models, nn
from ..autograd import no_grad
from ..data import DataLoader
from ..random import Generator, get_rng_state, manual_seed
from . import checkpoint as ckpt
from .components import autocast_context, build_optimizer, build_scheduler, clip_grad_norm, make_scaler
from .config import TrainConfig, TrainError
from .metrics import MetricsLog, plot_loss_curve
from .parallel import Parallel
from .sampler import ResumableBatchSampler
from .tasks import Task, build_task, data_kind

CHECKPOINT_DIR, METRICS_FILE, PLOT_FILE, SAMPLE_FILE = "checkpoint", "metrics.jsonl", "loss.png", "sample.txt"
DEFAULT_STEPS = 500


@dataclass
class TrainResult:
    """What a call to `train` did: the steps it ran, their losses, the last evaluation, and where it wrote."""

    run_dir: str
    start_step: int
    step: int
    total_steps: int
    losses: list[float] = field(default_factory=list)
    last_eval: dict | None = None
    interrupted: bool = False
    diverged: bool = False
    sample: str | None = None


class _Interrupt:
    """SIGINT sets a flag the loop checks after each step (a second Ctrl-C aborts at once)."""

    def __init__(self):
        self.requested = False
        self._old = None

    def __enter__(self):
        try:
            self._old = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: no handler, Ctrl-C behaves as usual
            self._old = None
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


def _model_config(cfg: TrainConfig, task: Task) -> dict:
    fields = {f for f in models.config_class(cfg.model).__dataclass_fields__}
    conf = dict(cfg.model_config)
    for k, v in task.model_fields.items():
        if k in fields:
            conf[k] = v
    if cfg.block_size is not None and "block_size" in fields:
        conf["block_size"] = cfg.block_size
    unknown = sorted(set(conf) - fields)
    if unknown:
        name = models.config_class(cfg.model).__name__
        raise TrainError(f"model_config: {name} has no field {unknown[0]!r}; its fields are "
                         f"{', '.join(sorted(fields))}")
    return conf


def _check_pairing(cfg: TrainConfig) -> None:
    model_kind = models.MODELS[cfg.model][2]
    kind = data_kind(cfg.data)
    if model_kind != kind:
        if model_kind == "lm":
            raise TrainError(f"--model {cfg.model} is a language model and --data {cfg.data} is an image "
                             "set: use --model mlp, convnet or resnet for images, or --data shakespeare, "
                             "stdlib or a text file")
        raise TrainError(f"--model {cfg.model} classifies images and --data {cfg.data} is text: use --model "
                         "gpt or lstm for text, or --data mnist or cifar10")


def _block_size(cfg: TrainConfig) -> int:
    if cfg.block_size is not None:
        return cfg.block_size
    if "block_size" in cfg.model_config:
        return int(cfg.model_config["block_size"])
    return getattr(models.config_class(cfg.model)(), "block_size", 128)


def _ce(logits, y):
    """Cross-entropy in float32: logits (B, K) with y (B,), or (B, T, V) with y (B, T)."""
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))


def evaluate(model, task: Task, batch_size: int, max_batches: int, amp: str = "off") -> dict:
    """Mean loss over up to max_batches fixed validation batches (+ accuracy for classifiers, perplexity
    for language models). Draws nothing from any training random stream."""
    n = len(task.val)
    count = min(n, max_batches * batch_size) if max_batches else n
    # evenly spread windows / images: the same ones at every evaluation
    idx = [int(i) for i in (range(count) if count == n else
                            (round(j * (n - 1) / max(count - 1, 1)) for j in range(count)))]
    loader = DataLoader(task.val, batch_sampler=[idx[i:i + batch_size] for i in range(0, count, batch_size)],
                        generator=Generator(0))
    was_training = model.training
    model.eval()
    total, correct, seen = 0.0, 0, 0
    with no_grad(), autocast_context(amp):
        for x, y in loader:
            logits = model(x)
            loss = _ce(logits, y)
            if task.kind != "lm":
                correct += int((logits.argmax(dim=-1) == y).sum().item())
            total += float(loss.item()) * x.shape[0]
            seen += x.shape[0]
    model.train(was_training)
    out = {"val_loss": total / seen}
    if task.kind == "lm":
        out["perplexity"] = math.exp(out["val_loss"]) if out["val_loss"] < 700 else math.inf
    else:
        out["accuracy"] = correct / seen
    return out


def _default_batch(cfg: TrainConfig, kind: str) -> int:
    if cfg.batch_size is not None:
        return cfg.batch_size
    return 16 if kind == "lm" else (128 if cfg.model == "mlp" else 64)


def train(cfg: TrainConfig, *, on_step: Callable[[int, float], bool | None] | None = None,
          log: Callable[[str], None] | None = None) -> TrainResult:
    """Run (or resume, with cfg.resume) a training run; returns what it did.

    on_step(step, loss) is called after each step; returning True stops the run as Ctrl-C does (save a
    checkpoint, then return with interrupted=True). log(line) receives the run's messages (default:
    stderr)."""
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    _check_pairing(cfg)
    par = Parallel(cfg)
    if not par.is_main:  # one rank speaks for the job
        log = lambda s: None  # noqa: E731
        cfg = cfg.__class__(**{**cfg.to_dict(), "progress": False})
    run_dir = cfg.run_dir
    ckpt_dir = os.path.join(run_dir, CHECKPOINT_DIR)
    meta = None
    if cfg.resume:
        if not ckpt.checkpoint_exists(ckpt_dir):
            raise TrainError(f"--resume: no checkpoint in {ckpt_dir}; start without --resume, or pass --out "
                             "the run directory of the run to continue")
        meta = ckpt.read_meta(ckpt_dir)
        _check_same_run(cfg, meta.get("config") or {})
    block_size = _block_size(cfg)
    task = build_task(cfg, block_size)
    if task.note:
        log(task.note)
    batch_size = _default_batch(cfg, task.kind)
    par.check_batch(batch_size)

    manual_seed(cfg.seed)
    try:
        model = models.get_model(cfg.model, _model_config(cfg, task))
    except ValueError as e:
        raise TrainError(str(e)) from None
    net, optimizer, stepper = par.wrap(model, lambda params: build_optimizer(cfg, params))
    data_gen = Generator(cfg.seed).fork(1)
    sampler = ResumableBatchSampler(len(task.train), batch_size, data_gen)
    loader = DataLoader(task.train, batch_sampler=sampler, generator=data_gen)
    steps_per_epoch = len(sampler)
    total = cfg.epochs * steps_per_epoch if cfg.epochs else (cfg.steps or DEFAULT_STEPS)
    scheduler = build_scheduler(cfg, optimizer, total)
    scaler = make_scaler(cfg.amp)

    step, epoch, batch_in_epoch = 0, 0, 0
    epoch_state = data_gen.get_state()
    if meta is not None:
        meta = ckpt.load_checkpoint(ckpt_dir, model, optimizer, scheduler=scheduler, scaler=scaler)
        step, epoch = meta["step"], meta["epoch"]
        epoch_state, batch_in_epoch = meta["data"]["generator"], meta["data"]["batch"]
        data_gen.set_state(epoch_state)
        sampler.skip(batch_in_epoch)
        log(f"resumed from {ckpt_dir} at step {step} (epoch {epoch})")
    os.makedirs(run_dir, exist_ok=True)
    metrics = MetricsLog(os.path.join(run_dir, METRICS_FILE) if par.is_main else os.devnull)
    metrics.truncate_after(step) if meta is not None else _fresh(metrics.path)
    if task.tokenizer is not None and par.is_main:
        task.tokenizer.save(os.path.join(run_dir, "tokenizer.json"))

    def save() -> None:
        if par.engine is not None:  # ZeRO: every rank writes its shard
            from ..distributed.checkpoint import save_sharded
            save_sharded(par.engine, ckpt_dir + "-zero")
            return
        if not par.is_main:  # data-parallel ranks hold the same state: rank 0 writes it
            return
        ckpt.save_checkpoint(ckpt_dir, model, optimizer, scheduler=scheduler, scaler=scaler, step=step,
                             epoch=epoch, rng={"ember": get_rng_state()},
                             data_state={"generator": epoch_state, "batch": batch_in_epoch},
                             config=cfg.to_dict(), extra={"model_config": _jsonable(model.config)})

    result = TrainResult(run_dir, step, step, total)
    unit = "tok/s" if task.kind == "lm" else "samples/s"
    rate_key = "tokens_per_s" if task.kind == "lm" else "samples_per_s"
    per_step = batch_size * (block_size if task.kind == "lm" else 1)
    save_every = cfg.eval_every if cfg.save_every is None else cfg.save_every
    log(f"training {cfg.model} ({sum(p.numel() for p in model.parameters()):,} parameters) on {task.name}: "
        f"{total} steps of batch {batch_size}, {cfg.optimizer} lr {optimizer.param_groups[0]['lr']:g}, amp "
        f"{cfg.amp}; run dir {run_dir}" + (f"; {par.world} ranks" if par.enabled else ""))
    compiled_step = _compiled_step(cfg, net, model, optimizer, stepper) if cfg.compile else None
    bar = _progress(cfg, total, step)
    it = iter(loader)
    rate = None
    model.train()
    with _Interrupt() as interrupt:
        while step < total:
            t0 = time.perf_counter()
            try:
                x, y = next(it)
            except StopIteration:
                epoch, batch_in_epoch = epoch + 1, 0
                epoch_state = data_gen.get_state()
                it = iter(loader)
                continue
            x, y = par.shard(x, y)
            if compiled_step is not None:  # forward, backward, clipping, update, zero_grad: one replay
                loss = compiled_step(x, y)
            else:
                with autocast_context(cfg.amp):
                    loss = _ce(net(x), y)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    if cfg.grad_clip:
                        scaler.unscale_(optimizer)
                        clip_grad_norm(model.parameters(), cfg.grad_clip)
                    scaler.step(optimizer)
                    scaler.update()
                elif par.engine is not None:
                    loss.backward()
                    par.engine.step(max_norm=cfg.grad_clip)
                else:
                    loss.backward()
                    if cfg.grad_clip:
                        clip_grad_norm(model.parameters(), cfg.grad_clip)
                    optimizer.step()
                stepper.zero_grad()
            lr = optimizer.param_groups[0]["lr"]
            if scheduler is not None:
                scheduler.step()
            step, batch_in_epoch = step + 1, batch_in_epoch + 1
            value = par.mean(float(loss.item()))
            result.losses.append(value)
            dt = time.perf_counter() - t0
            rate = per_step / dt if rate is None else 0.9 * rate + 0.1 * per_step / dt
            if step % cfg.log_every == 0 or step == total:
                metrics.write({"split": "train", "step": step, "epoch": epoch, "loss": value, "lr": lr,
                               rate_key: round(rate, 2), "time": round(time.time(), 3)})
            if bar is not None:
                bar.update(1)
                bar.set_postfix({"loss": f"{value:.4f}", unit: f"{rate:,.0f}"}, refresh=False)
            if not math.isfinite(value):
                result.diverged = True
                break
            if cfg.eval_every and step % cfg.eval_every == 0 and step < total:
                result.last_eval = _eval_and_log(model, task, cfg, batch_size, metrics, step, epoch, bar, log)
            if save_every and step % save_every == 0 and step < total:
                save()
            stop = on_step(step, value) if on_step is not None else False
            if stop or interrupt.requested:
                result.interrupted = True
                break
        if bar is not None:
            bar.close()
        result.step = step
        if result.diverged:  # keep the last good checkpoint rather than saving NaN weights over it
            log(f"step {step}: the loss is {result.losses[-1]}; stopped without saving (the last checkpoint, "
                f"if any, is in {ckpt_dir}). Hint: lower --lr, or set --grad-clip")
        elif result.interrupted:
            save()
            log(f"interrupted at step {step}/{total}: checkpoint saved in {ckpt_dir}; continue with "
                f"`ember train --resume --out {run_dir}`")
        else:
            result.last_eval = _eval_and_log(model, task, cfg, batch_size, metrics, step, epoch, None, log)
            save()
            if task.kind == "lm" and cfg.sample_tokens:
                result.sample = _sample(model, task, cfg)  # every rank: ZeRO-3 gathers collectively
                if par.is_main:
                    with open(os.path.join(run_dir, SAMPLE_FILE), "w", encoding="utf-8") as f:
                        f.write(result.sample)
                log("sample:\n" + result.sample)
        if par.is_main:
            plot_loss_curve(metrics.path, os.path.join(run_dir, PLOT_FILE), title=f"{cfg.model} on {task.name}")
    return result


def _eval_and_log(model, task, cfg, batch_size, metrics, step, epoch, bar, log) -> dict:
    res = evaluate(model, task, batch_size, cfg.eval_batches, cfg.amp)
    metrics.write({"split": "val", "step": step, "epoch": epoch, **res})
    text = ", ".join(f"{k} {v:.4f}" for k, v in res.items())
    (bar.write if bar is not None else log)(f"step {step}: {text}")
    return res


def _sample(model, task: Task, cfg: TrainConfig) -> str:
    """A continuation of the first line of the validation text, sampled with its own fixed generator."""
    from ..creation import tensor
    prompt = task.val.tokens[:16].tolist()
    out = model.generate(tensor([prompt]), cfg.sample_tokens, temperature=0.8, top_k=None,
                         generator=Generator(cfg.seed))
    return task.tokenizer.decode(out[0].tolist())


def _compiled_step(cfg: TrainConfig, net, model, optimizer, stepper):
    """`--compile`: the plain (single-process, no loss scaling) step as one ember.compile'd function.
    The scheduler stays outside: the fused optimizer reads each group's lr when it runs."""
    from .. import compile as ember_compile

    def train_step(x, y):
        with autocast_context(cfg.amp):
            loss = _ce(net(x), y)
        loss.backward()
        if cfg.grad_clip:
            clip_grad_norm(model.parameters(), cfg.grad_clip)
        optimizer.step()
        stepper.zero_grad()
        return loss
    return ember_compile(train_step)


def _progress(cfg: TrainConfig, total: int, initial: int):
    if not cfg.progress:
        return None
    from tqdm import tqdm
    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, file=sys.stderr,
                mininterval=0.5)


def _fresh(path: str) -> None:
    if os.path.exists(path):
        os.unlink(path)


def _jsonable(config) -> dict:
    import dataclasses
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(config).items()}


# Settings that must match for a resumed run to continue the same trajectory.
_RESUME_KEYS = ("model", "data", "batch_size", "block_size", "optimizer", "scheduler", "amp", "seed",
                "model_config")


def _check_same_run(cfg: TrainConfig, saved: dict) -> None:
    now = cfg.to_dict()
    for k in _RESUME_KEYS:
        if k in saved and saved[k] != now[k]:
            raise TrainError(f"--resume: the checkpoint was made with {k}={saved[k]!r} but this run has "
                             f"{k}={now[k]!r}; pass the same --{k.replace('_', '-')} to resume")
