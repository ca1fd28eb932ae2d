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
    """ember/compiler/library.c built and bound to NumPy's OpenBLAS (CI has a C compiler and it)."""
    from ember.compiler import library
    lib = library.load()
    if lib is None:
        pytest.skip("library.c needs a C compiler and NumPy's OpenBLAS")
    return lib
