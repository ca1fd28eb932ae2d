"""docs/compiler.md's example runs and prints what the page shows."""

import contextlib
import io
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_compiler_doc_example_runs_and_explains_the_training_step():
    (block,) = re.findall(r"```python\n(.*?)```", (ROOT / "docs/compiler.md").read_text(), flags=re.S)
    ns: dict = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(block, ns)
    text = out.getvalue()
    for part in ("captured graph", "guard_bool", "optimizer_step", "after simplify", "fusion groups",
                 "reduces (sum)", "per call:", "passes over memory"):
        assert part in text, part
    assert ns["compiled"].traces == 1
