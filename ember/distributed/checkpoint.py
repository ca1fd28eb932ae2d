"""Sharded checkpoints: each rank writes its ZeRO shards; an index lets any number of ranks load them.

Layout of a checkpoint directory:
    index.json                          world size, units (names, shapes, sizes), optimizer groups
    shard-00000-of-00004.safetensors    rank 0's master shards and optimizer state, per unit
    ...
The directory is written under a temporary name and renamed, so an interrupted save leaves the
previous checkpoint intact. Loading re-cuts every unit's flat vector for the current world
size (reshard), so a run saved on 4 ranks resumes on 2 or 1.
"""

from __future__ import annotations

import json
import os
import shutil

from ..autograd import no_grad
from ..creation import zeros
from ..errors import CheckpointError
from ..io import load, load_metadata, save
from ..ops import cat
from ..tensor import Tensor
from . import comm


def _shard_name(rank: int, world: int) -> str:
    return f"shard-{rank:05d}-of-{world:05d}.safetensors"


def save_sharded(engine, path: str) -> None:
    """Write a ZeroDataParallel engine's parameters and optimizer state, one file per rank."""
    g = engine.group
    rank, world = g.rank, g.size
    tmp = path.rstrip("/") + ".tmp"
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
    comm.barrier(g)
    tensors, scalars = {}, {}
    for i, u in enumerate(engine.units):
        tensors[f"u{i}.param"] = u.master.detach()
        for key, val in engine.optimizer.state.get(u.master, {}).items():
            if isinstance(val, Tensor):
                tensors[f"u{i}.{key}"] = val
            else:
                scalars[f"u{i}.{key}"] = val
    save(tensors, os.path.join(tmp, _shard_name(rank, world)), metadata={"scalars": json.dumps(scalars)})
    if rank == 0:
        groups = [{k: v for k, v in grp.items() if k != "params"} for grp in engine.optimizer.param_groups]
        index = {"world_size": world, "stage": engine.config.stage, "param_groups": groups,
                 "units": [{"name": u.name, "params": u.names, "shapes": [list(s) for s in u.shapes],
                            "numel": u.numel, "padded": u.padded} for u in engine.units]}
        with open(os.path.join(tmp, "index.json"), "w") as f:
            json.dump(index, f, indent=1)
    comm.barrier(g)
    if rank == 0:
        old = path.rstrip("/") + ".old"
        if os.path.exists(path):
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    comm.barrier(g)


def read_index(path: str) -> dict:
    try:
        with open(os.path.join(path, "index.json")) as f:
            return json.load(f)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: not a sharded checkpoint (index.json is missing)") from None
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}/index.json: invalid JSON ({e})") from None


def consolidate(path: str) -> tuple[dict, dict]:
    """Full (unpadded) vectors of every unit's parameters and optimizer state, and the scalars.

    Returns ({'u0.param': flat, 'u0.exp_avg': flat, ...}, {'u0.step': 3, ...}) as saved by any
    number of ranks; the same state saved at different world sizes consolidates identically."""
    index = read_index(path)
    world = index["world_size"]
    shards = []
    scalars = {}
    for r in range(world):
        f = os.path.join(path, _shard_name(r, world))
        if not os.path.exists(f):
            raise CheckpointError(f"{path}: shard {r} of {world} ({os.path.basename(f)}) is missing")
        shards.append(load(f))
        scalars.update(json.loads(load_metadata(f).get("scalars", "{}")))
    full = {}
    for key in shards[0]:
        i = int(key.split(".")[0][1:])
        numel = index["units"][i]["numel"]
        full[key] = cat([s[key].reshape(-1) for s in shards])[:numel].contiguous()
    return full, scalars


def load_sharded(engine, path: str) -> None:
    """Load a checkpoint written by `save_sharded` at any world size into `engine` (reshard)."""
    index = read_index(path)
    if len(index["units"]) != len(engine.units):
        raise CheckpointError(f"{path}: has {len(index['units'])} parameter units, the model has "
                              f"{len(engine.units)}; was it saved from the same model?")
    for u, meta in zip(engine.units, index["units"]):
        if meta["numel"] != u.numel or meta["params"] != u.names:
            raise CheckpointError(f"{path}: unit {meta['name']!r} holds {meta['params']} ({meta['numel']} "
                                  f"values); the model's unit {u.name!r} holds {u.names} ({u.numel})")
    full, scalars = consolidate(path)
    g = engine.group
    with no_grad():
        for i, u in enumerate(engine.units):
            def my_shard(flat, like, u=u):
                padded = cat([flat, zeros(u.padded - u.numel, dtype=flat.dtype)])
                lo = g.rank * u.shard
                return padded[lo:lo + u.shard].to(like.dtype)
            u.master.copy_(my_shard(full[f"u{i}.param"], u.master))
            if u.mixed:
                u.local.copy_(u.master)
            state = {}
            for key, val in full.items():
                if key.startswith(f"u{i}.") and key != f"u{i}.param":
                    state[key.split(".", 1)[1]] = my_shard(val, val).clone()
            for key, val in scalars.items():
                if key.startswith(f"u{i}."):
                    state[key.split(".", 1)[1]] = val
            if state:
                engine.optimizer.state[u.master] = state
            if u.full is not None:
                comm.all_gather_into_tensor(u.full, u.local.clone(), g)
        for grp, saved in zip(engine.optimizer.param_groups, index["param_groups"]):
            grp.update(saved)


def save_on_rank0(state_dict: dict, path: str, group=None) -> None:
    """DDP checkpoints: every rank holds the same weights, so rank 0 alone writes them."""
    if comm.get_rank(group) == 0:
        save(state_dict, path)
    if comm.is_initialized():
        comm.barrier(group)
