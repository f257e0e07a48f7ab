"""`python -m kgpt2` is the `kgpt2` command."""

import sys

from kgpt2.cli import main

sys.exit(main())
