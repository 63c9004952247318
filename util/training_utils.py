"""Moved to model/sizes.py and training/progress.py (this alias goes once every import is
re-pointed)."""
from model.sizes import *  # noqa: F401,F403
from model.sizes import (DEBUG_MODEL_OVERRIDES, MODEL_SIZE_PRESETS, apply_debug_model_overrides,  # noqa: F401
                         get_bert_config, get_generator_config, get_model_bert_config)
from training.progress import ETALogger, format_time  # noqa: F401
