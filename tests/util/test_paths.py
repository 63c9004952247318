"""Tests of util/paths.py: the output-overlap guards shared by the writing scripts."""
import os

import pytest

from util import cli, paths


def test_relation_resolves_symlinks_and_dots(tmp_path):
  (tmp_path / "a" / "b").mkdir(parents=True)
  os.symlink(tmp_path / "a", tmp_path / "link")
  assert paths.relation(str(tmp_path / "a"), str(tmp_path / "link")) == "is"
  assert paths.relation(str(tmp_path / "a" / "b" / ".."), str(tmp_path / "a")) == "is"
  assert paths.relation(str(tmp_path), str(tmp_path / "link" / "b")) == "contains"
  assert paths.relation(str(tmp_path / "link" / "b" / "new"), str(tmp_path / "a")) == "is inside"
  assert paths.relation(str(tmp_path / "ab"), str(tmp_path / "a")) is None  # Not a prefix match.
  assert paths.relation("gs://b/x/y", "gs://b/x") == "is inside"


def test_check_output_apart_names_both_paths(tmp_path):
  model = str(tmp_path / "models" / "m")
  for output, how in ((model, "is"), (str(tmp_path), "contains"),
                      (os.path.join(model, "export"), "is inside")):
    with pytest.raises(cli.UsageError) as e:
      paths.check_output_apart(output, "--output-dir", [(model, "the model directory")])
    assert str(e.value) == (f"--output-dir {output} {how} the model directory {model}; writing "
                            "there could overwrite or delete it. Choose another --output-dir.")
  paths.check_output_apart(os.path.join(model, "x"), "--out", [(model, "it")], inside=False)
  paths.check_output_apart(str(tmp_path / "elsewhere"), "--out", [(model, "it"), (None, "-")])


def test_same_file_symlinks_and_hard_links(tmp_path):
  f = tmp_path / "f.txt"
  f.write_text("x")
  os.symlink(f, tmp_path / "sym")
  os.link(f, tmp_path / "hard")
  (tmp_path / "g.txt").write_text("x")
  assert paths.same_file(str(f), str(tmp_path / "sym"))
  assert paths.same_file(str(tmp_path / "hard"), str(f))
  assert not paths.same_file(str(f), str(tmp_path / "g.txt"))
  assert not paths.same_file(str(f), str(tmp_path / "missing"))
  assert paths.same_file(str(tmp_path / "missing"), str(tmp_path / "." / "missing"))


def test_check_export_dir(tmp_path):
  data = str(tmp_path / "data")
  models = os.path.join(data, "models")
  for output, message in ((os.path.join(models, "m"), "is the model directory"),
                          (models, "contains the model directory"),
                          (data, "contains the model directory"),
                          (os.path.join(models, "m", "export"), "is inside the model directory"),
                          (os.path.join(models, "other"), "is inside the models directory")):
    with pytest.raises(cli.UsageError, match=message + r".*e\.g\. to .*exports/m\."):
      paths.check_export_dir(output, data, "m")
  paths.check_export_dir(os.path.join(data, "exports", "m"), data, "m")
  released = tmp_path / "downloads" / "electra_small"
  released.mkdir(parents=True)
  prefix = str(released / "model.ckpt-10")
  for checkpoint in (str(released), prefix):
    with pytest.raises(cli.UsageError, match="is the checkpoint directory"):
      paths.check_export_dir(str(released), data, "m", checkpoint)
    with pytest.raises(cli.UsageError, match="contains the checkpoint directory"):
      paths.check_export_dir(str(released.parent), data, "m", checkpoint)
    # Next to (or, as a new sub-directory, inside) a released checkpoint is fine.
    paths.check_export_dir(str(released.parent / "export"), data, "m", checkpoint)
    paths.check_export_dir(str(released / "export"), data, "m", checkpoint)


def test_file_problem_never_opens(tmp_path):
  (tmp_path / "f.txt").write_text("x")
  os.symlink(tmp_path / "f.txt", tmp_path / "link")
  os.mkfifo(tmp_path / "fifo")
  assert paths.file_problem(str(tmp_path / "f.txt")) is None
  assert paths.file_problem(str(tmp_path / "link")) is None
  assert paths.file_problem(str(tmp_path / "missing")) == paths.MISSING == "does not exist"
  assert paths.file_problem(str(tmp_path / "f.txt" / "below")) == paths.MISSING
  assert paths.file_problem(str(tmp_path)) == "is a directory"
  assert paths.file_problem(str(tmp_path / "fifo")) == "is not a regular file (a FIFO)"


def test_check_output_file(tmp_path):
  data = str(tmp_path / "data")
  model = os.path.join(data, "models", "m")
  os.makedirs(model)
  with open(os.path.join(model, "checkpoint"), "w", encoding="utf-8") as f:
    f.write("x")
  protected = paths.model_dirs(data, "m")
  for output, message in ((os.path.join(model, "checkpoint"), "is inside the model directory"),
                          (os.path.join(model, "new.jsonl"), "is inside the model directory"),
                          (os.path.join(data, "models", "x.jsonl"),
                           "is inside the models directory"),
                          (data, "contains the model directory")):
    for overwrite in (False, True):
      with pytest.raises(cli.UsageError, match=f"--output {output} {message}"):
        paths.check_output_file(output, "--output", protected, overwrite)
  existing = tmp_path / "scores.jsonl"
  existing.write_text("x")
  with pytest.raises(cli.UsageError, match="already exists; pass --overwrite to replace it"):
    paths.check_output_file(str(existing), "--output", protected, False)
  paths.check_output_file(str(existing), "--output", protected, True)
  paths.check_output_file(str(tmp_path / "new" / "scores.jsonl"), "--output", protected, False)
  (tmp_path / "new").mkdir()
  os.mkfifo(tmp_path / "fifo")
  for path, problem in ((tmp_path / "new", "is a directory"),
                        (tmp_path / "fifo", r"is not a regular file \(a FIFO\)")):
    with pytest.raises(cli.UsageError, match=f"--output {path} {problem}"):
      paths.check_output_file(str(path), "--output", protected, True)
