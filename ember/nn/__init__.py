"""ember.nn: neural-network building blocks: `functional`, Module and Parameter, containers, layers
(ember/nn/layers/), `init` and `utils`.

Keep this file small: each concept lives in its own module and is imported here.
"""

from . import functional, init, utils  # noqa: F401
from .containers import Identity, ModuleDict, ModuleList, ParameterList, Sequential  # noqa: F401
from .layers import *  # noqa: F401,F403
from .module import Module, RemovableHandle  # noqa: F401
from .parameter import Buffer, Parameter  # noqa: F401
