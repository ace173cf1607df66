"""``python -m hgprune`` (also what ``torchrun -m hgprune`` runs)."""

import sys

from hgprune.cli import main

sys.exit(main())
