"""Deprecated location: moved to util/files.py, util/logs.py and util/signals.py."""
from util.files import *  # noqa: F401,F403
from util.files import atomic_write, current_umask, load_json, load_json_object, write_json, load_pickle, write_pickle, mkdir, rmrf, rmkdir  # noqa: F401
from util.logs import heading, log_heading, setup_logging  # noqa: F401
from util.signals import signal_handlers  # noqa: F401
