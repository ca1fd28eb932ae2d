"""ember.compiler: trace a function into a graph of registry ops, fuse, generate C, replay.

trace.py (capture) -> graph.py (IR) -> passes/ (dce, simplify, cse, fusion, memory) ->
kernel_ir.py -> codegen_c.py -> toolchain.py (build, cache) -> runtime.py (replay); api.py
ties them together as `ember.compile`. See docs/compiler.md.
"""

from .api import CompiledFunction, compile  # noqa: A004
from .toolchain import CompileError
from .trace import GraphBreak

__all__ = ["compile", "CompiledFunction", "CompileError", "GraphBreak"]
