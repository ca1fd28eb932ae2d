"""Every collective on N ranks, each checked against its definition; reports comm stats."""

import numpy as np
from _report import report

import ember
import ember.distributed as dist

dist.init()
r, n = dist.get_rank(), dist.get_world_size()
checks = {}
x = ember.tensor([float(r + 1)] * 5)
dist.all_reduce(x)
checks["all_reduce_sum"] = x.tolist() == [n * (n + 1) / 2] * 5
for op, want in (("max", n), ("min", 1), ("avg", (n + 1) / 2)):
    t = ember.tensor([float(r + 1)])
    dist.all_reduce(t, op)
    checks[f"all_reduce_{op}"] = abs(t.item() - want) < 1e-12
big = ember.arange(6 * n, dtype=ember.float64) * (r + 1)
out = ember.zeros(6, dtype=ember.float64)
dist.reduce_scatter_tensor(out, big)
checks["reduce_scatter"] = np.allclose(out.numpy(), np.arange(6 * n)[6 * r:6 * r + 6] * n * (n + 1) / 2)
g = ember.zeros(3 * n)
dist.all_gather_into_tensor(g, ember.full((3,), float(r)))
checks["all_gather"] = g.tolist() == sum([[float(i)] * 3 for i in range(n)], [])
lst = [ember.zeros(2) for _ in range(n)]
dist.all_gather(lst, ember.full((2,), float(r)))
checks["all_gather_list"] = [t.tolist() for t in lst] == [[float(i)] * 2 for i in range(n)]
b = ember.full((4,), float(r))
dist.broadcast(b, src=n - 1)
checks["broadcast"] = b.tolist() == [float(n - 1)] * 4
red = ember.full((2,), float(r + 1))
dist.reduce(red, dst=0)
checks["reduce"] = red.tolist() == ([n * (n + 1) / 2] * 2 if r == 0 else [float(r + 1)] * 2)
gl = [ember.zeros(2) for _ in range(n)] if r == 0 else None
dist.gather(ember.full((2,), float(r)), gl, dst=0)
checks["gather"] = r != 0 or [t.tolist() for t in gl] == [[float(i)] * 2 for i in range(n)]
sc = ember.zeros(3)
dist.scatter(sc, [ember.full((3,), float(i * 10)) for i in range(n)] if r == 1 else None, src=1)
checks["scatter"] = sc.tolist() == [float(r * 10)] * 3
# uneven all_to_all: rank r sends k+1 rows to rank k
ins = [ember.full((k + 1, 2), float(r * 100 + k)) for k in range(n)]
outs = [ember.zeros(r + 1, 2) for _ in range(n)]
dist.all_to_all(outs, ins)
checks["all_to_all_uneven"] = all(o.tolist() == [[float(k * 100 + r)] * 2] * (r + 1) for k, o in enumerate(outs))
h = dist.all_reduce(ember.ones(1000), async_op=True)
checks["async_wait"] = h.wait() is True
if n >= 2:
    if r == 0:
        dist.send(ember.arange(4, dtype=ember.float32), dst=1)
    elif r == 1:
        got = ember.zeros(4)
        dist.recv(got, src=0)
        checks["send_recv"] = got.tolist() == [0.0, 1.0, 2.0, 3.0]
for d in (ember.float16, ember.bfloat16):
    t = ember.full((3,), float(r + 1), dtype=d)
    dist.all_reduce(t)
    checks[f"all_reduce_{d.name}"] = t.float().tolist() == [n * (n + 1) / 2] * 3
mesh = dist.DeviceMesh((2, n // 2), ("dp", "tp")) if n % 2 == 0 else None
if mesh is not None:
    t = ember.tensor([float(r)])
    dist.all_reduce(t, group=mesh.group("tp"))
    row = [i for i in range(n) if i // (n // 2) == r // (n // 2)]
    checks["mesh_tp"] = t.item() == sum(row)
    t = ember.tensor([float(r)])
    dist.all_reduce(t, group=mesh.group("dp"))
    col = [i for i in range(n) if i % (n // 2) == r % (n // 2)]
    checks["mesh_dp"] = t.item() == sum(col)
dist.barrier()
report({"rank": r, "checks": checks, "stats": dist.stats()})
