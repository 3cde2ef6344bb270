"""``python -m softdimo`` (also what ``torchrun -m softdimo`` runs)."""
import sys

from .cli import main

sys.exit(main())
