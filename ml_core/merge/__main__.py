"""``python -m ml_core.merge``: see :mod:`ml_core.merge.cli`."""

import sys

from ml_core.merge.cli import main

sys.exit(main())
