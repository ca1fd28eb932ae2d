"""`python -m ember COMMAND` runs the `ember` console script (so `ember run -n 4 -m ember train` works)."""

import sys

from .cli.main import main

sys.exit(main())
