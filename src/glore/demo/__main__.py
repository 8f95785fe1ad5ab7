"""``python -m glore.demo``."""

import sys

from .cli import main

sys.exit(main())
