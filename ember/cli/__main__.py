"""`python -m ember.cli ...`: the same as the `ember` console script."""

import sys

from .main import main

sys.exit(main())
