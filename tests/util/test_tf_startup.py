"""util.tf_startup: TensorFlow's start-up banners appear at most once per process.

`import tensorflow` loads two native libraries that each print the same
banners (oneDNN, CUDA drivers, absl's pre-InitializeLog warning); the scripts
import TensorFlow through `util.tf_startup`, which drops the repeated lines.
"""
import os
import subprocess
import sys

from tests.conftest import REPO_ROOT
from util import tf_startup

# Banner lines as TensorFlow 2.21 prints them (one per native library load).
BANNERS = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    "I0000 00:00:1796580388.643594    8375 port.cc:153] oneDNN custom operations are on.\n"
    "I0000 00:00:1796580388.643864    8375 cudart_stub.cc:31] Could not find cuda drivers.\n")


def test_dedupe_lines_ignores_the_glog_time_and_thread():
  second = BANNERS.replace("1796580388.64", "1796580393.87").replace("8375", "8399")
  other = "E0000 00:00:1796580395.081053    8375 cuda_platform.cc:52] failed call to cuInit\n"
  assert tf_startup.dedupe_lines(BANNERS + second + other + "\n\n") == BANNERS + other + "\n\n"


def test_script_prints_each_banner_at_most_once(tmp_path):
  """The issue's reproduction: a bad hparam, so the script stops right after start-up."""
  env = dict(os.environ)
  env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the user's default: banners on
  result = subprocess.run(
      [sys.executable, "run_pretraining.py", "--data-dir", str(tmp_path), "--model-name", "m",
       "--hparams", '{"foo": 1}'], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
      timeout=300, check=False)
  assert result.returncode == 2
  lines = result.stderr.splitlines()
  assert lines[-1].startswith("error: Unknown hparam foo.")
  for banner in ("absl::InitializeLog", "oneDNN custom operations", "Could not find cuda",
                 "cpu_feature_guard"):
    assert sum(banner in line for line in lines) <= 1, (banner, result.stderr)
