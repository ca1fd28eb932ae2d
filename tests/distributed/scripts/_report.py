"""report(obj): what a test script hands back to tests/distributed/mpi.py."""

import json
import os


def report(obj: dict) -> None:
    rank = obj.get("rank", 0)
    with open(os.path.join(os.environ["EMBER_TEST_OUT"], f"rank{rank}.jsonl"), "a") as f:
        f.write(json.dumps(obj) + "\n")
