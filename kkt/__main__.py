"""``python -m kkt``: the ``kkt`` command."""

import sys

from kkt.tools.cli import main

sys.exit(main())
