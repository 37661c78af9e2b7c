"""``python -m admm.train``: see :mod:`admm.train`."""

import sys

from . import main

sys.exit(main())
