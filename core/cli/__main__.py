"""`python -m s321.cli` runs the command line."""

import sys

from s321.cli import main

sys.exit(main())
