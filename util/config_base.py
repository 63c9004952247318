"""Moved to training/config_base.py (this alias goes once every import is re-pointed)."""
import sys

from training import config_base as _moved

sys.modules[__name__] = _moved
