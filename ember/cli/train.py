"""`ember train`: train a model from ember.models on a data set, from flags or a run.toml.

Settings come from, lowest to highest priority: the saved run (with --resume), the --config file, the
flags given. Errors a user can fix print one line and exit with status 2; Ctrl-C saves a checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

NAME = "train"
HELP = "train a model (mlp, convnet, resnet, lstm, gpt) on mnist, cifar10, shakespeare, stdlib or a text file"
EXIT_DIVERGED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130

_EPILOG = """examples:
  ember train                                   # gpt on the Python stdlib source (no download)
  ember train --model convnet --data mnist --epochs 1
  ember train --model gpt --data shakespeare --steps 2000 --out runs/shk
  ember train --resume --out runs/shk --steps 4000   # continue (saved settings, more steps)
  ember train --config run.toml                 # same keys as the flags, plus a [model_config] table

MNIST: the default folder is ../shared/data/mnist next to the repository. When only the t10k files are
there, the first 8,000 images train and the last 2,000 are held out for evaluation."""


def _norm_or_off(s: str):
    return None if s.lower() in ("none", "off", "0") else float(s)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Every flag defaults to 'not given' (SUPPRESS), so a --config file or a resumed run can fill it."""
    from ..training.config import AMP_MODES, MODEL_NAMES, OPTIMIZERS, SCHEDULERS

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _EPILOG
    parser.error = lambda message: _usage_error(parser, message)  # one line, exit 2
    S = argparse.SUPPRESS
    a = parser.add_argument
    a("--config", metavar="RUN.TOML", default=S, help="read settings from a TOML file (flags win)")
    a("--model", choices=MODEL_NAMES, default=S, help="model to train (default gpt)")
    a("--data", metavar="NAME|PATH", default=S,
      help="mnist, cifar10, shakespeare, stdlib (default) or the path of a UTF-8 text file")
    a("--data-dir", metavar="DIR", default=S, help="folder holding the data set's files")
    a("--download", action="store_true", default=S, help="download MNIST / CIFAR-10 if missing")
    a("--steps", type=int, default=S, help="optimizer steps to train for (default 500)")
    a("--epochs", type=int, default=S, help="train for this many passes over the data instead of --steps")
    a("--batch-size", type=int, default=S, help="samples per step (default 16 for LMs, 64 or 128 for images)")
    a("--block-size", type=int, default=S, help="context length of language models (default 128)")
    a("--lr", type=float, default=S, help="peak learning rate (default 1e-3; 0.01 for sgd)")
    a("--weight-decay", type=float, default=S, help="weight decay (default 0.01 for adamw, else 0)")
    a("--optimizer", choices=OPTIMIZERS, default=S, help="default adamw")
    a("--scheduler", choices=SCHEDULERS, default=S, help="learning-rate schedule (default cosine)")
    a("--warmup-steps", type=int, default=S, help="linear warmup steps before the schedule (default 0)")
    a("--amp", choices=AMP_MODES, default=S, help="mixed precision: off (default), fp16 (loss scaling), bf16")
    a("--grad-clip", type=_norm_or_off, default=S, metavar="NORM",
      help="clip the global gradient norm (default 1.0; 0 or none turns it off)")
    a("--seed", type=int, default=S, help="seed of weights, dropout and data order (default 0)")
    a("--out", metavar="RUN_DIR", default=S, help="run directory (default runs/<model>-<data>)")
    a("--resume", action="store_true", default=S, help="continue the run in --out from its checkpoint")
    a("--eval-every", type=int, default=S,
      help="evaluate (and checkpoint) every N steps (default 100; 0: only at the end)")
    a("--eval-batches", type=int, default=S, help="batches per evaluation (default 20; 0: the whole set)")
    a("--save-every", type=int, default=S, help="checkpoint every N steps (default: --eval-every)")
    a("--log-every", type=int, default=S, help="write a metrics.jsonl line every N steps (default 1)")
    a("--sample-tokens", type=int, default=S, help="tokens to generate at the end for LMs (default 200)")
    a("--model-config", metavar="KEY=VALUE", action="append", default=S,
      help="override a model config field, e.g. --model-config n_layer=2 (repeatable)")
    a("--no-progress", dest="progress", action="store_false", default=S, help="no progress bar")
    a("--ddp", action="store_true", default=S, help="data parallel over the ranks of `ember run -n N`")
    a("--zero", type=int, choices=(1, 2, 3), default=S, help="ZeRO stage: shard optimizer state (1), "
      "gradients (2) and parameters (3) over the ranks")
    a("--compress", metavar="SPEC", default=S,
      help="DDP gradient compression: fp16, bf16, topk:RATIO, powersgd:RANK or terngrad")
    a("--compile", action="store_true", default=S,
      help="run each training step (forward, backward, clipping, optimizer) through ember.compile")


def _usage_error(parser: argparse.ArgumentParser, message: str):
    print(f"ember train: error: {message} (see `ember train --help`)", file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
        return text


def _read_toml(path: str) -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise _Fail(f"--config {path}: no such file") from None
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise _Fail(f"--config {path}: not valid TOML ({e})") from None


class _Fail(Exception):
    """A one-line usage error raised while gathering settings."""


def gather_settings(args: argparse.Namespace) -> dict:
    """TrainConfig keyword arguments from a saved run (when resuming), the --config file and the flags."""
    from ..training import checkpoint_exists, read_meta
    from ..training.config import TrainConfig, config_keys

    keys = set(config_keys())
    given = {k: v for k, v in vars(args).items() if k in keys or k == "model_config"}
    if isinstance(given.get("model_config"), list):
        pairs = {}
        for item in given["model_config"]:
            k, sep, v = item.partition("=")
            if not sep or not k:
                raise _Fail(f"--model-config {item!r}: expected KEY=VALUE, e.g. n_layer=2")
            pairs[k.strip()] = _parse_value(v.strip())
        given["model_config"] = pairs
    values: dict = {}
    if getattr(args, "config", None):
        table = _read_toml(args.config)
        for k, v in table.items():
            key = k.replace("-", "_")
            if key not in keys:
                raise _Fail(f"--config {args.config}: unknown key {k!r}; expected one of "
                            f"{', '.join(sorted(keys - {'progress'}))}")
            values[key] = v
    if "model_config" in values and "model_config" in given:
        given["model_config"] = {**values["model_config"], **given["model_config"]}
    values.update(given)
    if values.get("resume"):
        probe = TrainConfig(**{k: values[k] for k in ("model", "data", "out") if k in values})
        ckpt_dir = os.path.join(probe.run_dir, "checkpoint")
        if checkpoint_exists(ckpt_dir):
            saved = dict(read_meta(ckpt_dir).get("config") or {})
            for k in ("resume", "out", "progress"):
                saved.pop(k, None)
            if "steps" in values or "epochs" in values:  # a new length replaces the saved one
                saved.pop("steps", None)
                saved.pop("epochs", None)
            values = {**{k: v for k, v in saved.items() if k in keys}, **values}
            values["out"] = probe.run_dir
    return values


def run(args: argparse.Namespace) -> int:
    """Run `ember train`; returns the exit status: 0 done, 1 loss diverged, 2 usage error, 130 Ctrl-C."""
    from ..errors import EmberError
    from ..training.config import TrainConfig, TrainError
    from ..training.trainer import train

    try:
        cfg = TrainConfig(**gather_settings(args))
        result = train(cfg)
    except (_Fail, TrainError) as e:
        print(f"ember train: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except EmberError as e:  # e.g. a corrupt checkpoint: CheckpointError names the file
        print(f"ember train: error: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_USAGE
    except TypeError as e:  # a wrong value type in run.toml
        if "TrainConfig" not in str(e):
            raise
        print(f"ember train: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("ember train: aborted (Ctrl-C outside a training step: no new checkpoint)", file=sys.stderr)
        return EXIT_INTERRUPTED
    if result.interrupted:
        return EXIT_INTERRUPTED
    if result.diverged:
        return EXIT_DIVERGED
    from ..distributed import get_rank
    if get_rank() == 0:  # in a parallel run, one rank reports
        summary = {"run_dir": result.run_dir, "step": result.step, **(result.last_eval or {})}
        print(json.dumps(summary))
    return 0
