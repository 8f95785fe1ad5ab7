import sys

from glore.cli import main

sys.exit(main())
