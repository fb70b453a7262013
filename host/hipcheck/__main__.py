import sys

from hipcheck.cli import main

sys.exit(main())
