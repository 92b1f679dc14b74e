"""``python -m tea_verl.cli``: the ``tea-verl`` command."""

import sys

from tea_verl.cli import main

sys.exit(main())
