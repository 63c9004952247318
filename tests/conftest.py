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


def build_moby_dick_tfrecords(root, n_lines: int = 100, max_seq_length: int = 32) -> str:
  """`<root>/pretrain_tfrecords` from the first `n_lines` lines of the bundled Moby-Dick
  (uncased vocab, seed 0), as a user builds them; returns that folder."""
  import build_pretraining_dataset  # pylint: disable=import-outside-toplevel

  corpus = os.path.join(root, "corpus")
  os.makedirs(corpus, exist_ok=True)
  with open(SAMPLE_CORPUS, encoding="utf-8") as f:
    head = "".join(next(f) for _ in range(n_lines))
  with open(os.path.join(corpus, "moby_dick_head.txt"), "w", encoding="utf-8") as f:
    f.write(head)
  output = os.path.join(root, "pretrain_tfrecords")
  assert build_pretraining_dataset.main([
      "--corpus-dir", corpus, "--vocab-file", UNCASED_VOCAB, "--output-dir", output,
      "--max-seq-length", str(max_seq_length), "--seed", "0"]) == 0
  return output


def skipped_special_files(fifo: str, device_link: str) -> list:
  """The builders' warning lines for a FIFO and a link to a character device in their input."""
  return [f"warning: skipping {fifo}: it is a FIFO (named pipe), not a regular file (never "
          "opened).",
          f"warning: skipping {device_link}: it is a character device, not a regular file "
          "(never opened)."]


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
