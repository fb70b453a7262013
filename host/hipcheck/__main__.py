"""``python -m hipcheck``: the command line of ``hipcheck.cli``, with its exit code."""

import sys

from hipcheck.cli import main

sys.exit(main())
