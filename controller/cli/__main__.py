"""`python -m controller.cli`: the same as the `p38` command."""

import sys

from controller.cli import main

sys.exit(main())
