"""The top-k hook on a hand-made bucket, 2 ranks: reports what went in and came out of each step.

usage: topk_hook.py   (tests/distributed/test_compression.py checks the records against NumPy)
"""

import numpy as np
from _report import report

import ember
import ember.distributed as dist
from ember.distributed import compression
from ember.distributed.ddp import GradBucket

dist.init()
rank = dist.get_rank()
SIZES = [300, 37, 1000, 5]
n = sum(SIZES)
params = [ember.zeros(s) for s in SIZES]
offsets = [int(o) for o in np.cumsum([0] + SIZES[:-1])]
CONFIGS = [dict(values="log8"), dict(values="float16"), dict(values="float32"),
           dict(values="log8", layerwise=True), dict(values="log8", momentum=0.9, mask_momentum=True)]
rng = np.random.default_rng(rank)
for cfg in CONFIGS:
    for ratio in (0.1, 0.02):
        state = compression.TopKState(ratio, **cfg)
        bucket = GradBucket(0, params, offsets, n)
        for step in range(3):
            # magnitudes spread over 4 decades, as in real gradients
            grad = (rng.standard_normal(n) * 10.0 ** rng.integers(-4, 1, n)).astype(np.float32)
            bucket.flat = ember.tensor(grad)
            res = state.residual[0].numpy().tolist() if 0 in state.residual else [0.0] * n
            vel = state.velocity[0].numpy().tolist() if 0 in state.velocity else [0.0] * n
            dist.stats(reset=True)
            sent = state.sent
            out = compression.topk_hook(state, bucket).wait()
            gathered = sum(v["bytes"] for k, v in dist.stats().items() if k.startswith("all_gather"))
            report({"rank": rank, "cfg": cfg, "ratio": ratio, "step": step, "grad": grad.tolist(),
                    "res_before": res, "vel_before": vel, "res_after": state.residual[0].numpy().tolist(),
                    "vel_after": state.velocity[0].numpy().tolist(), "out": out.numpy().tolist(),
                    "sent": state.sent - sent, "gathered": gathered, "state_ratio": state.ratio})
