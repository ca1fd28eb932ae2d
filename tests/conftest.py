import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture(autouse=True)
def _seed():
    import ember
    ember.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def c_library():
    """ember/compiler/library.c built and bound to its default BLAS (CI has a C compiler, NumPy's
    OpenBLAS and the `mkl` wheel)."""
    from ember.compiler import library
    lib = library.load()
    if lib is None:
        pytest.skip("library.c needs a C compiler and NumPy's OpenBLAS")
    return lib


@pytest.fixture(params=["openblas", "mkl"])
def blas_library(request, c_library):
    """library.c bound to each BLAS it can call in turn (the test extra installs MKL), then rebound
    to the default."""
    from ember.compiler import library
    try:
        prev = library.use_blas(request.param)
    except RuntimeError as e:
        pytest.skip(str(e))
    yield c_library
    library.use_blas(prev.name)
