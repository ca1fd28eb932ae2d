"""Training checkpoints as a directory: model.safetensors, optim.safetensors and meta.json.

Nested state (optimizer, scheduler, GradScaler) is split into its tensors, stored in
optim.safetensors, and a JSON skeleton that refers to them by key. A checkpoint is written
to `<dir>.tmp` and swapped in with renames, so a crash mid-write leaves the previous one readable.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from typing import Any

import numpy as np

from .. import io
from ..errors import CheckpointError
from ..tensor import Tensor

MODEL_FILE, OPTIM_FILE, META_FILE = "model.safetensors", "optim.safetensors", "meta.json"
FORMAT = "ember.checkpoint/1"


# --- nested state <-> (JSON skeleton, flat tensors) -----------------------------------------------


def pack(obj: Any, tensors: dict[str, Tensor], prefix: str) -> Any:
    """A JSON-safe copy of `obj` where each Tensor is replaced by {"__tensor__": key} and stored in
    `tensors[key]`; tuples and dicts with non-str keys are tagged so `unpack` restores them exactly."""
    if isinstance(obj, Tensor):
        tensors[prefix] = obj
        return {"__tensor__": prefix}
    if isinstance(obj, Mapping):
        if all(isinstance(k, str) for k in obj):
            return {k: pack(v, tensors, f"{prefix}.{k}") for k, v in obj.items()}
        return {"__items__": [[pack(k, tensors, f"{prefix}.key{i}"), pack(v, tensors, f"{prefix}.{k}")]
                              for i, (k, v) in enumerate(obj.items())]}
    if isinstance(obj, tuple):
        return {"__tuple__": [pack(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [pack(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"checkpoint: cannot store a {type(obj).__name__} at {prefix!r}; state must be made of "
                    "tensors, numbers, strings, None, lists, tuples and dicts")


def unpack(obj: Any, tensors: Mapping[str, Tensor]) -> Any:
    """Inverse of `pack`."""
    if isinstance(obj, dict):
        if set(obj) == {"__tensor__"}:
            return tensors[obj["__tensor__"]]
        if set(obj) == {"__items__"}:
            return {unpack(k, tensors): unpack(v, tensors) for k, v in obj["__items__"]}
        if set(obj) == {"__tuple__"}:
            return tuple(unpack(v, tensors) for v in obj["__tuple__"])
        return {k: unpack(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [unpack(v, tensors) for v in obj]
    return obj


# --- directory writes ----------------------------------------------------------------------------


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(path: str | os.PathLike, model, optimizer=None, *, scheduler=None, scaler=None,
                    step: int = 0, epoch: int = 0, rng: dict | None = None, data_state: dict | None = None,
                    config: dict | None = None, extra: dict | None = None) -> None:
    """Write a checkpoint directory at `path`, replacing any previous one only once the new one is whole.

    rng: the RNG states to restore (default: ember.random.get_rng_state()); data_state: the data
    order's position (sampler generator state, batch index); config/extra: JSON-safe dicts."""
    from ..random import get_rng_state

    path = os.path.abspath(os.fspath(path))
    tmp, old = path + ".tmp", path + ".old"
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    os.makedirs(tmp)
    try:
        io.save(model.state_dict(), os.path.join(tmp, MODEL_FILE))
        tensors: dict[str, Tensor] = {}
        skeleton = {name: pack(obj.state_dict(), tensors, name) if obj is not None else None
                    for name, obj in (("optimizer", optimizer), ("scheduler", scheduler), ("scaler", scaler))}
        io.save(tensors, os.path.join(tmp, OPTIM_FILE), metadata={"format": FORMAT,
                                                                   "state": json.dumps(skeleton)})
        meta = {"format": FORMAT, "step": int(step), "epoch": int(epoch),
                "rng": rng if rng is not None else {"ember": get_rng_state()},
                "data": data_state, "config": config, "extra": extra,
                "scheduler": skeleton["scheduler"], "scaler": skeleton["scaler"]}
        text = json.dumps(meta, indent=2)
        io.atomic_write(os.path.join(tmp, META_FILE), lambda f: f.write(text.encode()))
        _fsync_dir(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    # swap: path -> path.old, tmp -> path, drop path.old; `_resolve` reads path.old if we die in between
    if os.path.exists(old):
        shutil.rmtree(old)
    if os.path.exists(path):
        os.replace(path, old)
    os.replace(tmp, path)
    _fsync_dir(os.path.dirname(path))
    shutil.rmtree(old, ignore_errors=True)


def _resolve(path: str) -> str:
    """The directory that holds the last complete checkpoint for `path`."""
    if os.path.isfile(os.path.join(path, META_FILE)):
        return path
    old = path + ".old"
    if os.path.isfile(os.path.join(old, META_FILE)):
        return old  # interrupted between the two renames of save_checkpoint
    if os.path.isdir(path):
        raise CheckpointError(f"checkpoint {path}: {META_FILE} is missing (not a checkpoint directory, or an "
                              "incomplete one)")
    raise CheckpointError(f"checkpoint {path}: no such directory")


def checkpoint_exists(path: str | os.PathLike) -> bool:
    """Whether `path` (or its backup from an interrupted save) holds a complete checkpoint."""
    try:
        _resolve(os.path.abspath(os.fspath(path)))
        return True
    except CheckpointError:
        return False


def read_meta(path: str | os.PathLike) -> dict:
    """meta.json of a checkpoint directory (step, epoch, rng, data, config, extra, ...)."""
    d = _resolve(os.path.abspath(os.fspath(path)))
    file = os.path.join(d, META_FILE)
    try:
        with open(file, encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"checkpoint {file}: cannot read meta.json ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else None
        raise CheckpointError(f"checkpoint {file}: not an ember checkpoint (format {got!r}, expected "
                              f"{FORMAT!r})")
    return meta


def load_checkpoint(path: str | os.PathLike, model, optimizer=None, *, scheduler=None, scaler=None,
                    restore_rng: bool = True) -> dict:
    """Load a checkpoint written by `save_checkpoint` into the given objects; returns meta.json's dict.

    restore_rng: also put ember's default generator back where it was when the checkpoint was saved."""
    from ..random import set_rng_state

    d = _resolve(os.path.abspath(os.fspath(path)))
    meta = read_meta(d)
    model.load_state_dict(io.load(os.path.join(d, MODEL_FILE)))
    optim_file = os.path.join(d, OPTIM_FILE)
    tensors = io.load(optim_file)
    try:
        skeleton = json.loads(io.load_metadata(optim_file)["state"])
    except (KeyError, json.JSONDecodeError) as e:
        raise CheckpointError(f"checkpoint {optim_file}: missing or invalid 'state' metadata ({e})") from None
    for name, obj in (("optimizer", optimizer), ("scheduler", scheduler), ("scaler", scaler)):
        if obj is None:
            continue
        if skeleton.get(name) is None:
            raise CheckpointError(f"checkpoint {d}: holds no {name} state, but a {type(obj).__name__} "
                                  "was given")
        obj.load_state_dict(unpack(skeleton[name], tensors))
    if restore_rng and meta.get("rng", {}).get("ember") is not None:
        set_rng_state(meta["rng"]["ember"])
    return meta
