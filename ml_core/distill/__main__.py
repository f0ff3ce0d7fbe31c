"""Entry point of ``python -m ml_core.distill`` (see :mod:`ml_core.distill.cli`)."""

from ml_core.distill.cli import main

raise SystemExit(main())
