"""`python -m monitor` runs the replyclock command line."""

import sys

from monitor.cli import main

sys.exit(main())
