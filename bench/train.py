"""W1 `mlp`, W2 `cnn`, W3 `gpt-train`: one training step (zero_grad, forward, loss, backward, optimizer
step) of ember eager against its PyTorch eager twin, timed side by side in one run.

Both frameworks start from the same weights (ember's, copied into torch) and cycle the same synthetic
batches; the first-step losses are checked equal before timing. Usage:
`python bench/train.py --workload mlp|cnn|gpt-train|all`.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch
from common import busy_note, compare, fmt_time, machine_header, spread, table

import ember
import ember.nn.functional as F
from ember import models, optim

N_BATCHES = 4  # synthetic batches, cycled by both frameworks alike


# --- PyTorch twins, with the same parameter names as the ember models --------------------------------
def torch_mlp() -> torch.nn.Module:
    """784-512-512-10 ReLU, keys `net.{0,2,4}.*` as ember.models.MLP."""
    tnn = torch.nn

    class MLP(tnn.Module):
        def __init__(self):
            super().__init__()
            self.net = tnn.Sequential(tnn.Linear(784, 512), tnn.ReLU(), tnn.Linear(512, 512), tnn.ReLU(),
                                      tnn.Linear(512, 10))

        def forward(self, x):
            return self.net(x.reshape(x.shape[0], -1))

    return MLP()


def torch_cnn() -> torch.nn.Module:
    """W2 ConvNet, keys `features.*` / `classifier.*` as ember.models.ConvNet."""
    tnn = torch.nn

    class ConvNet(tnn.Module):
        def __init__(self):
            super().__init__()
            self.features = tnn.Sequential(tnn.Conv2d(1, 32, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2),
                                           tnn.Conv2d(32, 64, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2))
            self.classifier = tnn.Sequential(tnn.Flatten(), tnn.Linear(3136, 128), tnn.ReLU(),
                                             tnn.Linear(128, 10))

        def forward(self, x):
            return self.classifier(self.features(x))

    return ConvNet()


def torch_gpt(vocab=65, block=128, n_layer=4, n_head=4, n_embd=128) -> torch.nn.Module:
    """The W3 GPT (nanoGPT layout), keys as ember.models.GPT."""
    tnn, tF = torch.nn, torch.nn.functional

    class Attn(tnn.Module):
        def __init__(self):
            super().__init__()
            self.c_attn = tnn.Linear(n_embd, 3 * n_embd)
            self.c_proj = tnn.Linear(n_embd, n_embd)

        def forward(self, x):
            B, T, C = x.shape
            q, k, v = self.c_attn(x).split(n_embd, dim=2)
            q, k, v = (t.view(B, T, n_head, C // n_head).transpose(1, 2) for t in (q, k, v))
            y = tF.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.c_proj(y.transpose(1, 2).reshape(B, T, C))

    class MLP(tnn.Module):
        def __init__(self):
            super().__init__()
            self.c_fc = tnn.Linear(n_embd, 4 * n_embd)
            self.gelu = tnn.GELU(approximate="tanh")
            self.c_proj = tnn.Linear(4 * n_embd, n_embd)

        def forward(self, x):
            return self.c_proj(self.gelu(self.c_fc(x)))

    class Block(tnn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1, self.attn = tnn.LayerNorm(n_embd, eps=1e-5), Attn()
            self.ln_2, self.mlp = tnn.LayerNorm(n_embd, eps=1e-5), MLP()

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    class GPT(tnn.Module):
        def __init__(self):
            super().__init__()
            self.transformer = tnn.ModuleDict(dict(
                wte=tnn.Embedding(vocab, n_embd), wpe=tnn.Embedding(block, n_embd),
                h=tnn.ModuleList([Block() for _ in range(n_layer)]), ln_f=tnn.LayerNorm(n_embd, eps=1e-5)))
            self.lm_head = tnn.Linear(n_embd, vocab, bias=False)

        def forward(self, idx):
            t = self.transformer
            x = t.wte(idx) + t.wpe(torch.arange(idx.shape[1]))
            for b in t.h:
                x = b(x)
            return self.lm_head(t.ln_f(x))

    return GPT()


# --- workloads ------------------------------------------------------------------------------------
WORKLOADS = {
    # id: (ember model name, torch twin, batch size, optimizer (name, kwargs), unit, items per sample)
    "mlp": ("mlp", torch_mlp, 128, ("SGD", dict(lr=0.01, momentum=0.9)), "samples/s"),
    "cnn": ("convnet", torch_cnn, 64, ("Adam", dict(lr=1e-3)), "samples/s"),
    "gpt-train": ("gpt", torch_gpt, 16, ("AdamW", dict(lr=1e-3, weight_decay=0.01)), "tokens/s"),
}
TITLES = {"mlp": "W1 mlp 784-512-512-10 SGD-m b128", "cnn": "W2 cnn ConvNet Adam b64",
          "gpt-train": "W3 gpt-train 4L4H128 AdamW b16 T128"}


def synthetic_batches(workload: str, batch: int, rng: np.random.Generator):
    """N_BATCHES (input, target) NumPy pairs of the workload's shapes."""
    out = []
    for _ in range(N_BATCHES):
        if workload == "gpt-train":
            toks = rng.integers(0, 65, (batch, 129))
            out.append((toks[:, :-1].astype(np.int64), toks[:, 1:].astype(np.int64)))
        else:
            shape = (batch, 784) if workload == "mlp" else (batch, 1, 28, 28)
            out.append((rng.random(shape, dtype=np.float32), rng.integers(0, 10, batch).astype(np.int64)))
    return out


def build(workload: str, seed: int = 0):
    """(ember step fn, torch step fn, items per step, first-step losses (ember, torch)).

    A step fn runs one full training step on the next cycled batch and returns the loss tensor."""
    name, twin, batch, (opt_name, opt_kw), _ = WORKLOADS[workload]
    ember.manual_seed(seed)
    torch.manual_seed(seed)
    em_model = models.get_model(name)
    th_model = twin()
    sd = {k: torch.from_numpy(v.numpy().copy()) for k, v in em_model.state_dict().items()}
    th_model.load_state_dict(sd, strict=True)
    em_opt = getattr(optim, opt_name)(em_model.parameters(), **opt_kw)
    th_opt = getattr(torch.optim, opt_name)(th_model.parameters(), **opt_kw)
    data = synthetic_batches(workload, batch, np.random.default_rng(seed))
    em_data = [(ember.tensor(x), ember.tensor(y)) for x, y in data]
    th_data = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in data]

    def stepper(model, opt, batches, ce):
        i = [0]

        def step():
            x, y = batches[i[0] % N_BATCHES]
            i[0] += 1
            opt.zero_grad()
            logits = model(x)
            loss = ce(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            loss.backward()
            opt.step()
            return loss
        return step

    em_step = stepper(em_model, em_opt, em_data, F.cross_entropy)
    th_step = stepper(th_model, th_opt, th_data, torch.nn.functional.cross_entropy)
    losses = (float(em_step().item()), float(th_step().item()))
    items = batch * (128 if workload == "gpt-train" else 1)
    return em_step, th_step, items, losses


def run(workload: str, reps: int, repeats: int):
    """Time one workload; returns a table row and its timings."""
    em_step, th_step, items, (l_em, l_th) = build(workload)
    if not math.isclose(l_em, l_th, rel_tol=1e-4):
        raise AssertionError(f"{workload}: first-step losses differ: ember {l_em:.6f}, torch {l_th:.6f}")
    times = compare({"ember": em_step, "torch": th_step}, reps=reps, repeats=repeats, warmup=3)
    unit = WORKLOADS[workload][4]
    e, t = times["ember"], times["torch"]
    row = [TITLES[workload], unit, f"{items / e.median:,.0f} ({spread(e)})", fmt_time(e.median),
           f"{items / t.median:,.0f} ({spread(t)})", fmt_time(t.median), f"{t.median / e.median:.2f}x"]
    return row, times


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workload", choices=[*WORKLOADS, "all"], default="all")
    p.add_argument("--reps", type=int, default=20, help="timed steps per repeat (>= 20)")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    names = list(WORKLOADS) if args.workload == "all" else [args.workload]
    rows, all_times = [], []
    for w in names:
        row, times = run(w, args.reps, args.repeats)
        rows.append(row)
        all_times += list(times.values())
    print(machine_header(torch))
    print()
    print(table("training step, eager: throughput (spread over repeats); ratio = ember / torch throughput, "
                "higher is better",
                ["workload", "unit", "ember", "ember/step", "torch", "torch/step", "ratio"], rows,
                [f"median of {args.repeats} repeats x {args.reps} steps after 3 warm-up steps; "
                 f"{N_BATCHES} synthetic batches cycled; same initial weights, first-step losses checked equal"]
                + busy_note(all_times)))


if __name__ == "__main__":
    main()
