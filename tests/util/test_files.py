"""util/files.py: atomic writes keep the umask's permissions and leave no temporary."""
import os
import stat

import pytest

from util import files


@pytest.mark.parametrize("umask,expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_write_respects_the_umask_like_open(tmp_path, umask, expected):
  previous = os.umask(umask)
  try:
    with open(tmp_path / "reference.txt", "w") as f:  # what a normal file gets
      f.write("x")
    files.write_json({"a": 1}, str(tmp_path / "config.json"))
    with files.atomic_write(str(tmp_path / "data.bin"), "wb") as f:
      f.write(b"\0")
  finally:
    os.umask(previous)
  for name in ("reference.txt", "config.json", "data.bin"):
    assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == expected, name


def test_atomic_write_failure_keeps_the_old_file_and_removes_the_temporary(tmp_path):
  path = tmp_path / "results.txt"
  path.write_text("old")
  with pytest.raises(OSError, match="No space left"):
    with files.atomic_write(str(path)) as f:
      f.write("partial")
      raise OSError(28, "No space left on device")
  assert path.read_text() == "old"
  assert os.listdir(tmp_path) == ["results.txt"]
