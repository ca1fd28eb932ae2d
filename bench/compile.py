"""ember.compile against ember eager, PyTorch eager and (W3) torch.compile, side by side in one run:
W1 (MLP training step), W2 (ConvNet training step), W3 (GPT training step), a single-token
decode-like forward, kernels per step against eager dispatches, and compile time (cold, cached).

Usage: `python bench/compile.py [--workload mlp|cnn|gpt-train|decode|all] [--reps 20] [--repeats 3]
[--no-torch-compile]`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import torch
from common import busy_note, compare, fmt_time, machine_header, spread, table
from train import N_BATCHES, WORKLOADS, synthetic_batches

import ember
import ember.nn.functional as F
from ember import models, optim
from ember.compiler import toolchain

TITLES = {"mlp": "W1 mlp SGD-m b128", "cnn": "W2 cnn ConvNet Adam b64",
          "gpt-train": "W3 gpt-train AdamW b16 T128",
          "decode": "decode-like: W3 model forward on 1 token"}


def build(workload: str, seed: int = 0, torch_compile: bool = False):
    """Step functions (ember eager, ember compiled, torch eager and, with `torch_compile`, torch.compile
    of the model with inductor's C++ backend) on the same weights and batches."""
    name, twin, batch, (opt_name, opt_kw), _ = WORKLOADS[workload]
    ember.manual_seed(seed)
    torch.manual_seed(seed)
    variants = {}
    ref_sd = None  # the ember model's initial weights, copied into the torch twin
    data = synthetic_batches(workload, batch, np.random.default_rng(seed))
    kinds = ("ember", "compiled", "torch") + (("torch.compile",) if torch_compile else ())
    for kind in kinds:
        if kind.startswith("torch"):
            model = twin()
            model.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in ref_sd.items()})
            opt = getattr(torch.optim, opt_name)(model.parameters(), **opt_kw)
            batches = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in data]
            ce = torch.nn.functional.cross_entropy
            if kind == "torch.compile":  # forward and backward compiled (AOTAutograd); AdamW stays eager
                model = torch.compile(model)
        else:
            ember.manual_seed(seed)
            model = models.get_model(name)
            ref_sd = model.state_dict()
            opt = getattr(optim, opt_name)(model.parameters(), **opt_kw)
            batches = [(ember.tensor(x), ember.tensor(y)) for x, y in data]
            ce = F.cross_entropy

        def step(x, y, model=model, opt=opt, ce=ce):
            opt.zero_grad()
            logits = model(x)
            loss = ce(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            loss.backward()
            opt.step()
            return loss
        fn = ember.compile(step) if kind == "compiled" else step
        variants[kind] = (_cycled(fn, batches), fn)
    items = batch * (128 if workload == "gpt-train" else 1)
    return variants, items


def _cycled(fn, batches):
    i = [0]

    def call():
        x, y = batches[i[0] % N_BATCHES]
        i[0] += 1
        return fn(x, y)
    return call


def build_decode(seed: int = 0):
    """Forward of the W3 model on one token (batch 1) under no_grad: the weights' work of one
    generation step (a decode step also attends over its KV cache, which this leaves out)."""
    ember.manual_seed(seed)
    model = models.get_model("gpt")
    model.eval()
    toks = ember.randint(0, 65, (1, 1))

    def fwd(x):
        return model(x)[:, -1]
    cf = ember.compile(fwd)

    def eager():
        with ember.no_grad():
            return fwd(toks)

    def compiled():
        with ember.no_grad():
            return cf(toks)
    return {"ember": (eager, fwd), "compiled": (compiled, cf)}, 1


def compile_times(workload: str) -> tuple[float, float, dict]:
    """Seconds for the first call (trace + passes + C build) in a fresh cache, then from the cache."""
    old = os.environ.get("EMBER_CACHE_DIR")
    with tempfile.TemporaryDirectory() as d:
        os.environ["EMBER_CACHE_DIR"] = d
        try:
            out = []
            for _ in range(2):
                toolchain._loaded.clear()
                variants, _ = build_decode() if workload == "decode" else build(workload)
                call, cf = variants["compiled"]
                t = time.perf_counter()
                call()
                out.append(time.perf_counter() - t)
            report = list(cf.entries.values())[0].report
        finally:
            if old is None:
                os.environ.pop("EMBER_CACHE_DIR", None)
            else:
                os.environ["EMBER_CACHE_DIR"] = old
    return out[0], out[1], report


def run(workload: str, reps: int, repeats: int, torch_compile: bool = False):
    variants, items = build_decode() if workload == "decode" else build(workload, torch_compile=torch_compile)
    tc_build = None
    for kind, (call, _) in variants.items():
        t0 = time.perf_counter()
        call()  # first call: traces and builds
        if kind == "torch.compile":
            tc_build = time.perf_counter() - t0
    times = compare({k: v[0] for k, v in variants.items()}, reps=reps, repeats=repeats, warmup=3)
    e, c = times["ember"], times["compiled"]
    t, tc = times.get("torch"), times.get("torch.compile")
    row = [TITLES[workload], f"{items / c.median:,.0f} ({spread(c)})", fmt_time(c.median),
           fmt_time(e.median), f"{e.median / c.median:.2f}x",
           fmt_time(t.median) if t else "-", f"{t.median / c.median:.2f}x" if t else "-",
           fmt_time(tc.median) if tc else "-", f"{tc.median / c.median:.2f}x" if tc else "-"]
    cold, warm, rep = compile_times(workload)
    s = rep["steps"]
    launches = s["kernels"] + s["library_ops"] - s["views"] + s["optimizer_steps"]
    note = (f"{workload}: {s['kernels']} fused kernels + {s['library_ops']} library ops ({s['views']} of them "
            f"views) + {s['optimizer_steps']} fused optimizer steps per call vs {rep['eager_dispatches']} eager op "
            f"dispatches: {launches} passes over memory, {rep['eager_dispatches'] / max(1, launches):.1f}x fewer; "
            f"compile {cold:.2f} s cold, {warm:.2f} s from the cache"
            + (f"; torch.compile's first call {tc_build:.1f} s" if tc_build is not None else ""))
    return row, list(times.values()), note


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workload", choices=["mlp", "cnn", "gpt-train", "decode", "all"], default="all")
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-torch-compile", action="store_true",
                   help="skip the torch.compile variant of gpt-train (its first call compiles for ~30 s)")
    args = p.parse_args(argv)
    names = ["mlp", "cnn", "gpt-train", "decode"] if args.workload == "all" else [args.workload]
    rows, all_times, notes = [], [], []
    for w in names:
        row, times, note = run(w, args.reps, args.repeats, torch_compile=w == "gpt-train" and not args.no_torch_compile)
        rows.append(row)
        all_times += times
        notes.append(note)
    print(machine_header(torch))
    print(table("ember.compile (backend='c') against eager, one run",
                ["workload", "items/s compiled", "compiled", "ember eager", "vs ember", "torch eager",
                 "vs torch", "torch.compile", "vs t.compile"], rows, notes + busy_note(all_times)))


if __name__ == "__main__":
    main()
