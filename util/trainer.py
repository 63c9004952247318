"""Moved to training/trainer.py (this alias goes once every import is re-pointed)."""
import sys

from training import trainer as _moved

sys.modules[__name__] = _moved
