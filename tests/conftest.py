"""Shared fixtures: repository paths, the real vocab, real text slices, tiny configs."""
import hashlib
import logging
import os
import stat

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEST_DATA = os.path.join(REPO_ROOT, "tests", "data")
UNCASED_VOCAB = os.path.join(REPO_ROOT, "data", "vocab", "uncased_vocab.txt")
SAMPLE_CORPUS = os.path.join(REPO_ROOT, "data", "corpus", "moby_dick.txt")

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(autouse=True)
def _reset_electra_logger():
  """Undoes a script main()'s `logs.setup_logging` (also from module fixtures) so that
  every test starts with the library's default: records propagate to caplog."""
  logger = logging.getLogger("electra")
  logger.propagate, logger.level = True, logging.NOTSET
  logger.handlers[:] = []
  yield


@pytest.fixture(scope="session")
def vocab_file() -> str:
  return UNCASED_VOCAB


@pytest.fixture(scope="session")
def sample_corpus_file() -> str:
  return SAMPLE_CORPUS


@pytest.fixture(scope="session")
def moby_dick_lines() -> list:
  """The first ~300 non-empty lines of the bundled Moby-Dick (real text)."""
  lines = []
  with open(SAMPLE_CORPUS, encoding="utf-8") as f:
    for line in f:
      line = line.strip()
      if line:
        lines.append(line)
      if len(lines) >= 300:
        break
  return lines


@pytest.fixture
def electra_log(caplog):
  """caplog at INFO for the "electra" logger (its records propagate: see above)."""
  with caplog.at_level(logging.INFO, logger="electra"):
    yield caplog


def tree_state(root: str, folder_mtimes: bool = True) -> dict:
  """{relative path: state} of everything under `root`, to assert nothing changed.

  A regular file's state is (size, mtime_ns, sha256 of its bytes); a folder's is
  (0, mtime_ns), or None with `folder_mtimes=False` (a lock file that comes and goes
  moves its folder's mtime); anything else (a FIFO, a socket, a link to a device) is
  (its file type, mtime_ns) and is never opened.
  """
  state = {}
  for directory, dirs, files in os.walk(root):
    for name in dirs + files:
      path = os.path.join(directory, name)
      info = os.lstat(path)
      if name in dirs:
        state[os.path.relpath(path, root)] = (0, info.st_mtime_ns) if folder_mtimes else None
      elif stat.S_ISREG(info.st_mode):
        state[os.path.relpath(path, root)] = (info.st_size, info.st_mtime_ns, _sha256(path))
      else:
        state[os.path.relpath(path, root)] = (stat.S_IFMT(info.st_mode), info.st_mtime_ns)
  return state


def _sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()
