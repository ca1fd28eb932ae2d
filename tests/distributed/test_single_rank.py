"""Without mpiexec the world has one rank: the same code runs alone (checked in a subprocess, since
init() joins MPI for the rest of the process)."""

import json
import subprocess
import sys

SCRIPT = r"""
import json
import ember
from ember.distributed import comm, mesh
from ember.distributed.ddp import DistributedDataParallel
from ember import nn
g = comm.init()
out = {"rank": comm.get_rank(), "world": comm.get_world_size()}
t = ember.tensor([1.0, 2.0])
comm.all_reduce(t, comm.ReduceOp.AVG)
out["all_reduce"] = t.tolist()
full = ember.zeros(2)
comm.all_gather_into_tensor(full, ember.tensor([3.0, 4.0]))
out["all_gather"] = full.tolist()
m = mesh.DeviceMesh((1, 1), ("dp", "tp"))
out["mesh"] = [m.size("dp"), m.coord("tp"), m.group("dp").size]
ember.manual_seed(0)
a = nn.Linear(3, 2)
b = nn.Linear(3, 2)
b.load_state_dict(a.state_dict())
x = ember.randn(4, 3)
DistributedDataParallel(a)(x).sum().backward()
b(x).sum().backward()
out["ddp_equals_plain"] = a.weight.grad.tolist() == b.weight.grad.tolist()
out["stats"] = comm.stats()["all_reduce/world"]
print(json.dumps(out))
"""


def test_one_rank_world_without_mpiexec():
    p = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert (out["rank"], out["world"]) == (0, 1)
    assert out["all_reduce"] == [1.0, 2.0] and out["all_gather"] == [3.0, 4.0]
    assert out["mesh"] == [1, 0, 1]
    assert out["ddp_equals_plain"]
    # the t all_reduce plus one per DDP bucket, each counted with its payload; a 1-rank ring sends nothing
    assert out["stats"]["calls"] == 2 and out["stats"]["wire_bytes"] == 0
