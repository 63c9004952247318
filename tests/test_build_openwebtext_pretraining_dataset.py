"""Tests of build_openwebtext_pretraining_dataset.py (see
docs/cli.md#build_openwebtext_pretraining_datasetpy) on tiny .tar.xz archives.

The archives hold real text (the Wikipedia-lead slice of tests/data/corpus,
one or two articles per .txt file, as OpenWebText holds one web page per file).
"""
import os
import random
import re
import shutil
import subprocess
import sys
import tarfile

import pytest

import build_openwebtext_pretraining_dataset as owt
from model import tokenization
from tests.conftest import REPO_ROOT, TEST_DATA, skipped_special_files
from tests.test_build_pretraining_dataset import (PROGRESS, ReferenceBuilder, check_layout,
                                                  corpus_counts, distribute, parse_summary,
                                                  read_shards)

WIKI = os.path.join(TEST_DATA, "corpus", "wiki_leads_mathematics_lines1-80.txt")
NUM_ARCHIVES = 11


def _documents():
  with open(WIKI, encoding="utf-8") as f:
    return [d.strip() for d in f.read().split("\n\n") if d.strip()]


@pytest.fixture
def data_dir(tmp_path, vocab_file):
  """DATA/vocab.txt and DATA/openwebtext/urlsf_subset00-<k>_data.xz (tar.xz archives)."""
  data = tmp_path / "data"
  (data / "openwebtext").mkdir(parents=True)
  shutil.copy(vocab_file, data / "vocab.txt")
  documents = _documents()
  sources = tmp_path / "sources"
  members = {}
  for k in range(NUM_ARCHIVES):
    archive_sources = sources / str(k)
    archive_sources.mkdir(parents=True)
    names = []
    for j in range(3):
      doc = documents[(3 * k + j) % len(documents)]
      if j == 1:  # Blank lines inside a file do not split it (blanks_separate_docs=False).
        doc += "\n\n" + documents[(3 * k + j + 17) % len(documents)]
      name = f"{k:04d}-{j}.txt"
      (archive_sources / name).write_text(doc + "\n", encoding="utf-8")
      names.append(name)
    archive = data / "openwebtext" / f"urlsf_subset00-{k}_data.xz"
    with tarfile.open(archive, "w:xz") as tar:
      for name in names:
        tar.add(archive_sources / name, arcname=name)
    members[archive.name] = [str(archive_sources / name) for name in names]
  return str(data), members


def test_seeded_build_matches_reference(data_dir, vocab_file, capsys):
  data, members = data_dir
  assert owt.main(["--data-dir", data, "--max-seq-length", "45", "--seed", "9"]) == 0
  # Reference (docs/cli.md#build_openwebtext_pretraining_datasetpy): archives sorted, shuffled; per
  # archive the files are sorted and shuffled with the same generator the builder draws from.
  rng = random.Random(9)
  archives = sorted(members)
  rng.shuffle(archives)
  reference = ReferenceBuilder(tokenization.FullTokenizer(vocab_file), 45, rng, blanks=False)
  for archive in archives:
    paths = sorted(members[archive])
    rng.shuffle(paths)
    for path in paths:
      reference.add_file(path)
  shards = read_shards(os.path.join(data, "pretrain_tfrecords"), 45)
  assert shards == distribute(reference.examples)
  assert len(reference.examples) > 33  # At least one per file.
  for records in shards.values():
    for record in records:
      check_layout(record, 45)
  lines = capsys.readouterr().out.strip().split("\n")
  assert lines[:2] == ["Job 0: Creating example writer", "Job 0: Writing tf examples"]
  assert lines[-2] == "Job 0: Done!"
  # The summary against an independent count: every extracted file is one document.
  files = [path for paths in members.values() for path in paths]
  total, documents = corpus_counts(files, tokenization.FullTokenizer(vocab_file), blanks=False)
  written = sum(len(a) + len(b) for records in shards.values()
                for a, b in (check_layout(r, 45) for r in records))
  assert documents == 3 * NUM_ARCHIVES and 0 < written < total
  assert parse_summary(lines[-1]) == (len(reference.examples), written, documents,
                                      total - written)
  # Progress only every 10 archives.
  assert [PROGRESS.fullmatch(line).groups()[1:4] for line in lines[2:-2]] == [
      ("10", "11", "90.9")]
  # The scratch dir keeps the last archive's files (never cleaned,
  # docs/cli.md#differences-from-the-original).
  scratch = os.path.join(data, "tmp", "job_0")
  assert sorted(os.listdir(scratch)) == sorted(map(os.path.basename, members[archives[-1]]))
  assert sorted(os.listdir(data)) == ["openwebtext", "pretrain_tfrecords", "tmp", "vocab.txt"]


def test_flags_and_defaults():
  args = owt.parse_args(["--data-dir", "d"])
  assert (args.max_seq_length, args.num_processes, args.do_lower_case, args.strip_accents,
          args.seed) == (128, 1, True, True, None)
  assert not hasattr(args, "blanks_separate_docs")
  args = owt.parse_args(["--data-dir", "d", "--no-lower-case", "--no-strip-accents"])
  assert (args.do_lower_case, args.strip_accents) == (False, False)


def test_errors(data_dir, tmp_path, capsys):
  data, _ = data_dir
  cases = []
  missing_vocab = tmp_path / "missing_vocab"
  shutil.copytree(data, missing_vocab)
  os.remove(missing_vocab / "vocab.txt")
  cases.append((str(missing_vocab), "vocab.txt does not exist"))
  no_owt = tmp_path / "no_owt"
  no_owt.mkdir()
  cases.append((str(no_owt), "openwebtext does not exist"))
  cases.append((str(tmp_path / "nowhere"), "Data directory"))
  for data_arg, message in cases:
    assert owt.main(["--data-dir", data_arg]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err, err


def test_flag_errors_exit_2(data_dir, capsys):
  data, _ = data_dir
  for flags, message in ((["--max-seq-length", "3"], "--max-seq-length must be at least 5"),
                         (["--num-processes", "0"], "--num-processes must be in [1, 1000]")):
    assert owt.main(["--data-dir", data, *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
  assert sorted(os.listdir(data)) == ["openwebtext", "vocab.txt"]


@pytest.mark.slow  # Two builds, one in a subprocess.
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="FIFOs and /dev/zero")
def test_fifo_and_device_among_the_archives_are_skipped(data_dir, tmp_path):
  """tarfile.open on a FIFO would block for ever: it is skipped with a warning, never opened."""
  data, _ = data_dir
  expected = tmp_path / "expected"
  shutil.copytree(data, expected)
  flags = ["--max-seq-length", "45", "--seed", "9", "--num-processes", "2"]
  assert owt.main(["--data-dir", str(expected), *flags]) == 0
  fifo = os.path.join(data, "openwebtext", "zz_fifo")
  zero = os.path.join(data, "openwebtext", "zz_zero")
  os.mkfifo(fifo)  # Sorted last: one for each job.
  os.symlink("/dev/zero", zero)
  result = subprocess.run(  # The timeout is a hang guard.
      [sys.executable, os.path.join(REPO_ROOT, "build_openwebtext_pretraining_dataset.py"),
       "--data-dir", data, *flags],
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=180)
  assert result.returncode == 0, result.stderr
  assert [line for line in result.stderr.splitlines() if line.startswith("warning:")] == (
      skipped_special_files(fifo, zero))
  assert _shard_bytes(data) == _shard_bytes(expected)


def _shard_bytes(data):
  shards = os.path.join(data, "pretrain_tfrecords")
  return {name: open(os.path.join(shards, name), "rb").read() for name in os.listdir(shards)}


@pytest.mark.slow  # A subprocess importing TensorFlow.
def test_corrupt_archive_subprocess_exit_code(data_dir):
  data, _ = data_dir
  bad = os.path.join(data, "openwebtext", "urlsf_subset00-5_data.xz")
  with open(bad, "wb") as f:
    f.write(b"this is not an xz tarball\n")
  result = subprocess.run(
      [sys.executable, os.path.join(REPO_ROOT, "build_openwebtext_pretraining_dataset.py"),
       "--data-dir", data, "--seed", "1"],
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 1, result.stderr
  assert re.search(r"^error: .*urlsf_subset00-5_data\.xz is not a readable tar archive",
                   result.stderr, re.M), result.stderr
  assert not os.path.exists(os.path.join(data, "pretrain_tfrecords"))
  assert not os.path.exists(os.path.join(data, "pretrain_tfrecords.incomplete"))
