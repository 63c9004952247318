"""Moved to training/workers.py (this alias goes once every import is re-pointed)."""
import sys

from training import workers as _moved

sys.modules[__name__] = _moved
