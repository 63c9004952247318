"""Moved to training/graph_options.py (this alias goes once every import is re-pointed)."""
import sys

from training import graph_options as _moved

sys.modules[__name__] = _moved
