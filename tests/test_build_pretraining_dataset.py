"""Tests of build_pretraining_dataset.py on real corpus slices (see
docs/data.md#pre-training-corpus, docs/cli.md#build_pretraining_datasetpy).

The seeded output is compared with `reference_examples`, an independent,
compact transcription of docs/data.md#corpus-format and docs/cli.md#build_pretraining_datasetpy
(draw order included).
"""
import glob
import os
import random
import re
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import build_pretraining_dataset as bpd
from model import tokenization
from pretrain import dataset_builder, example_builder, tfrecord_writer
from tests.conftest import REPO_ROOT, TEST_DATA

CORPUS_SLICES = sorted(glob.glob(os.path.join(TEST_DATA, "corpus", "*.txt")))
CLS, SEP = 101, 102
PROGRESS = re.compile(r"Job (\d+): processed (\d+)/(\d+) files \((\d+\.\d)%\), ELAPSED: \d+s, "
                      r"ETA: \d+s, (\d+) examples written")


# --- helpers shared with the OpenWebText tests ---------------------------------


def read_shards(output_dir, max_seq_length):
  """{shard index: [(input_ids, input_mask, segment_ids), ...]} read back with tf.data."""
  names = sorted(os.listdir(output_dir))
  assert names == sorted(f"pretrain_data.tfrecord-{i}-of-1000" for i in range(1000))
  paths = [os.path.join(output_dir, f"pretrain_data.tfrecord-{i}-of-1000") for i in range(1000)]
  paths = [p for p in paths if os.path.getsize(p) > 0]
  if not paths:
    return {}
  spec = {key: tf.io.FixedLenFeature([max_seq_length], tf.int64)
          for key in ("input_ids", "input_mask", "segment_ids")}
  # One pipeline of (file name, record) pairs, parsed in a single batch.
  dataset = tf.data.Dataset.from_tensor_slices(paths).flat_map(
      lambda path: tf.data.TFRecordDataset(path).map(lambda record: (path, record)))
  files, serialized = next(iter(dataset.batch(1 << 20)))
  parsed = tf.io.parse_example(serialized, spec)
  assert all(t.dtype == tf.int64 and t.shape[1] == max_seq_length for t in parsed.values())
  shards = {}
  for row, (path, record) in enumerate(zip(files.numpy(), serialized.numpy())):
    features = tf.train.Example.FromString(record).features.feature
    assert sorted(features) == ["input_ids", "input_mask", "segment_ids"]
    index = int(re.fullmatch(rb".*tfrecord-(\d+)-of-1000", path).group(1))
    shards.setdefault(index, []).append(tuple(
        parsed[key][row].numpy().tolist() for key in ("input_ids", "input_mask", "segment_ids")))
  return shards


def check_layout(record, max_seq_length):
  """docs/data.md#example-layout: [CLS] A [SEP] (B [SEP]), segment ids, mask, zero padding."""
  ids, mask, segments = record
  n = sum(mask)
  assert mask == [1] * n + [0] * (max_seq_length - n)
  assert ids[n:] == [0] * (max_seq_length - n) and segments[n:] == [0] * (max_seq_length - n)
  assert ids[0] == CLS and ids[n - 1] == SEP and 0 not in ids[:n]
  seps = [i for i in range(n) if ids[i] == SEP]
  assert len(seps) in (1, 2) and CLS not in ids[1:n]
  first_sep = seps[0]
  assert first_sep >= 2  # The first segment is never empty.
  assert segments[:first_sep + 1] == [0] * (first_sep + 1)
  assert segments[first_sep + 1:n] == [1] * (n - first_sep - 1)
  a = ids[1:first_sep]
  b = ids[first_sep + 1:n - 1]
  assert len(seps) == 1 or len(b) > 0
  return a, b


def shard_order(num_processes, job_id):
  return [i for i in range(1000) if i % num_processes == job_id]


def distribute(examples, num_processes=1, job_id=0):
  """Round-robin: the worker's c-th example goes to its (c mod #shards)-th shard."""
  owned = shard_order(num_processes, job_id)
  shards = {}
  for c, example in enumerate(examples):
    shards.setdefault(owned[c % len(owned)], []).append(example)
  return shards


class ReferenceBuilder:
  """One worker's examples, drawing from `rng` as docs/data.md#corpus-format describe."""

  def __init__(self, tokenizer, max_len, rng, blanks=True):
    self.tokenizer, self.max_len, self.rng, self.blanks = tokenizer, max_len, rng, blanks
    self.examples, self.sentences, self.target = [], [], max_len

  def _create(self):
    rng, max_len = self.rng, self.max_len
    first_target = 100000 if rng.random() < 0.1 else (self.target - 3) // 2
    a, b = [], []
    for s in self.sentences:
      if (not a or len(a) + len(s) < first_target or
          (not b and len(a) < first_target and rng.random() < 0.5)):
        a += s
      else:
        b += s
    a = a[:max_len - 2]
    b = b[:max(0, max_len - len(a) - 3)]
    self.sentences = []
    self.target = rng.randint(5, max_len) if rng.random() < 0.05 else max_len
    ids = [CLS] + a + [SEP] + (b + [SEP] if b else [])
    segments = [0] * (len(a) + 2) + [1] * (len(b) + 1 if b else 0)
    pad = [0] * (max_len - len(ids))
    self.examples.append((ids + pad, [1] * len(ids) + pad, segments + pad))

  def _add(self, line):
    if not line and sum(map(len, self.sentences)):
      return self._create()
    self.sentences.append(self.tokenizer.convert_tokens_to_ids(self.tokenizer.tokenize(line)))
    if sum(map(len, self.sentences)) >= self.target:
      self._create()

  def add_file(self, path):
    with open(path, "rb") as f:
      lines = f.read().replace(b"\r", b"").decode("utf-8").split("\n")
    if lines[-1] == "":
      lines.pop()
    for line in lines:
      if line.strip() or self.blanks:
        self._add(line.strip())
    self._add("")  # Every file ends a document.


def reference_examples(paths, tokenizer, max_len, rng, blanks=True):
  builder = ReferenceBuilder(tokenizer, max_len, rng, blanks)
  for path in paths:
    builder.add_file(path)
  return builder.examples


def seeded_file_order(names, seed):
  rng = random.Random(seed)
  order = sorted(names)
  rng.shuffle(order)
  return order, rng


SUMMARY = re.compile(r"Wrote (\d+) examples \((\d+) tokens\) from (\d+) documents to .*; "
                     r"(\d+) tokens \(\d+\.\d%\) were cut by the --max-seq-length \d+ "
                     r"truncation\..*")


def parse_summary(line):
  """(examples, tokens, documents, truncated tokens) of the builder's summary line."""
  return tuple(map(int, SUMMARY.fullmatch(line).groups()))


def corpus_counts(paths, tokenizer, blanks=True):
  """(word-piece tokens, documents with a token) of text files, counted independently."""
  total = documents = 0
  for path in paths:
    with open(path, encoding="utf-8") as f:
      text = f.read()
    blocks = re.split(r"\n\s*\n", text) if blanks else [text]
    counts = [len(tokenizer.tokenize(block)) for block in blocks]
    total += sum(counts)
    documents += sum(1 for n in counts if n)
  return total, documents


# --- fixtures -------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer(vocab_file):
  # The reference (original) tokenizer path: the builder's fast path must match it.
  return tokenization.FullTokenizer(vocab_file, fast=False)


@pytest.fixture
def corpus_dir(tmp_path):
  path = tmp_path / "corpus"
  path.mkdir()
  for src in CORPUS_SLICES:
    shutil.copy(src, path)
  return str(path)


def build(corpus_dir, vocab_file, output_dir, *extra):
  return bpd.main(["--corpus-dir", corpus_dir, "--vocab-file", vocab_file,
                   "--output-dir", output_dir, *extra])


# --- tests -----------------------------------------------------------------------


def test_flags_and_defaults(capsys):
  args = bpd.parse_args(["--corpus-dir", "c", "--vocab-file", "v", "--output-dir", "o"])
  assert (args.max_seq_length, args.num_processes, args.blanks_separate_docs,
          args.do_lower_case, args.strip_accents, args.seed) == (128, 1, True, True, True, None)
  args = bpd.parse_args(["--corpus-dir", "c", "--vocab-file", "v", "--output-dir", "o",
                         "--no-lower-case", "--no-strip-accents", "--max-seq-length", "64",
                         "--num-processes", "3", "--seed", "7"])
  assert (args.max_seq_length, args.num_processes, args.do_lower_case, args.strip_accents,
          args.seed) == (64, 3, False, False, 7)
  # Quirk kept (docs/cli.md#differences-from-the-original): type=bool, so "False" means True, with a
  # warning.
  args = bpd.parse_args(["--corpus-dir", "c", "--vocab-file", "v", "--output-dir", "o",
                         "--blanks-separate-docs", "False"])
  assert args.blanks_separate_docs is True
  assert "--blanks-separate-docs 'False' means True" in capsys.readouterr().err
  args = bpd.parse_args(["--corpus-dir", "c", "--vocab-file", "v", "--output-dir", "o",
                         "--blanks-separate-docs", ""])
  assert args.blanks_separate_docs is False
  with pytest.raises(SystemExit):
    bpd.parse_args(["--corpus-dir", "c"])


def test_seeded_build_matches_reference(corpus_dir, vocab_file, tokenizer, tmp_path, capsys):
  out = str(tmp_path / "out")
  assert build(corpus_dir, vocab_file, out, "--max-seq-length", "37", "--seed", "11") == 0
  assert sorted(os.listdir(tmp_path)) == ["corpus", "out"]  # No staging dir left.
  shards = read_shards(out, 37)
  order, rng = seeded_file_order(os.listdir(corpus_dir), 11)
  expected = reference_examples([os.path.join(corpus_dir, n) for n in order], tokenizer, 37, rng)
  assert len(expected) > 100
  assert shards == distribute(expected)
  # Round-robin over 1000 shards: fewer examples than shards -> shards 0..n-1.
  assert sorted(shards) == list(range(len(expected)))
  kinds = [len(check_layout(r, 37)[1]) > 0 for records in shards.values() for r in records]
  assert kinds.count(False) > 0 and kinds.count(True) > 0  # Single and paired examples.
  lines = capsys.readouterr().out.strip().split("\n")
  assert lines[:2] == ["Job 0: Creating example writer", "Job 0: Writing tf examples"]
  assert lines[-2] == "Job 0: Done!"
  # The summary against an independent count: tokenize every line, count documents.
  total, documents = corpus_counts(CORPUS_SLICES, tokenizer)
  written = sum(len(a) + len(b) for records in shards.values()
                for a, b in (check_layout(r, 37) for r in records))
  assert 0 < written < total
  assert parse_summary(lines[-1]) == (len(expected), written, documents, total - written)
  assert lines[-1].startswith(f"Wrote {len(expected)} examples ({written} tokens) from "
                              f"{documents} documents to {out}; {total - written} tokens (")
  progress = [PROGRESS.fullmatch(line).groups() for line in lines[2:-2]]
  assert [(p[1], p[2], p[3]) for p in progress] == [("1", "3", "33.3"), ("2", "3", "66.7")]
  assert int(progress[-1][4]) < len(expected)
  # Byte for byte what TensorFlow writes (map entries in sorted order).
  for i in range(1000):
    name = f"pretrain_data.tfrecord-{i}-of-1000"
    with tf.io.TFRecordWriter(str(tmp_path / name)) as writer:
      for record in shards.get(i, []):
        writer.write(tfrecord_writer.ExampleFeatures(*record).to_tf_example().SerializeToString(
            deterministic=True))
    with open(os.path.join(out, name), "rb") as f1, open(tmp_path / name, "rb") as f2:
      assert f1.read() == f2.read(), name


def test_examples_come_from_one_file_in_document_order(corpus_dir, vocab_file, tokenizer,
                                                       tmp_path):
  out = str(tmp_path / "out")
  assert build(corpus_dir, vocab_file, out, "--max-seq-length", "64") == 0  # Unseeded.
  streams = []
  for path in CORPUS_SLICES:
    with open(path, encoding="utf-8") as f:
      streams.append(tokenizer.convert_tokens_to_ids(tokenizer.tokenize(f.read())))
  joined = [" " + " ".join(map(str, s)) + " " for s in streams]

  def is_subsequence(part, stream):
    it = iter(stream)
    return all(token in it for token in part)

  n_single = 0
  for records in read_shards(out, 64).values():
    for record in records:
      a, b = check_layout(record, 64)
      if not b:  # A single segment is a contiguous run of one file's tokens.
        n_single += 1
        needle = " " + " ".join(map(str, a)) + " "
        assert sum(needle in s for s in joined) == 1
      else:  # Both segments keep document order and come from the same file.
        assert any(is_subsequence(a, s) and is_subsequence(b, s) for s in streams)
  assert n_single > 0


def test_unseeded_build_uses_global_random(corpus_dir, vocab_file, tmp_path):
  seeded, unseeded = str(tmp_path / "seeded"), str(tmp_path / "unseeded")
  assert build(corpus_dir, vocab_file, seeded, "--max-seq-length", "29", "--seed", "5") == 0
  state = random.getstate()
  try:
    random.seed(5)  # The original's stream under random.seed(5).
    assert build(corpus_dir, vocab_file, unseeded, "--max-seq-length", "29") == 0
  finally:
    random.setstate(state)
  for i in range(1000):
    name = f"pretrain_data.tfrecord-{i}-of-1000"
    with open(os.path.join(seeded, name), "rb") as f1:
      with open(os.path.join(unseeded, name), "rb") as f2:
        assert f1.read() == f2.read(), name
  # The same seed twice gives identical records; another seed does not.
  again = str(tmp_path / "again")
  assert build(corpus_dir, vocab_file, again, "--max-seq-length", "29", "--seed", "5") == 0
  assert read_shards(again, 29) == read_shards(seeded, 29)
  other = str(tmp_path / "other")
  assert build(corpus_dir, vocab_file, other, "--max-seq-length", "29", "--seed", "6") == 0
  assert read_shards(other, 29) != read_shards(seeded, 29)


def test_blank_lines_ignored_and_options(corpus_dir, vocab_file, tmp_path):
  out = str(tmp_path / "out")
  assert build(corpus_dir, vocab_file, out, "--max-seq-length", "41", "--seed", "2",
               "--blanks-separate-docs", "", "--no-lower-case") == 0
  cased = tokenization.FullTokenizer(vocab_file, do_lower_case=False, fast=False)
  order, rng = seeded_file_order(os.listdir(corpus_dir), 2)
  expected = reference_examples([os.path.join(corpus_dir, n) for n in order], cased, 41, rng,
                                blanks=False)
  assert read_shards(out, 41) == distribute(expected)
  assert any(100 in ids for ids, _, _ in expected)  # Capitalized words -> [UNK].


@pytest.mark.slow  # Two spawned worker processes.
def test_two_processes_seed_each_worker(corpus_dir, vocab_file, tokenizer, tmp_path, capfd):
  out = str(tmp_path / "out")
  assert build(corpus_dir, vocab_file, out, "--max-seq-length", "33", "--seed", "100",
               "--num-processes", "2") == 0
  names = sorted(os.listdir(corpus_dir))
  expected = {}
  for job_id in range(2):
    mine = dataset_builder.job_files(names, job_id, 2)
    assert mine == names[job_id::2]
    order, rng = seeded_file_order(mine, 100 + job_id)
    examples = reference_examples([os.path.join(corpus_dir, n) for n in order], tokenizer, 33,
                                  rng)
    expected.update(distribute(examples, 2, job_id))
  assert read_shards(out, 33) == expected
  output = capfd.readouterr().out
  for job_id in range(2):
    assert f"Job {job_id}: Creating example writer" in output
    assert f"Job {job_id}: Done!" in output
  assert PROGRESS.search(output).groups()[:4] == ("0", "1", "2", "50.0")


def test_example_builder_draw_order_and_segments(tokenizer):
  """docs/data.md#packing-lines-into-examples with a scripted random source (exact calls and
  results)."""

  class ScriptedRng:
    def __init__(self, values):
      self.values, self.calls = list(values), []

    def random(self):
      self.calls.append("random")
      return self.values.pop(0)

    def randint(self, low, high):
      self.calls.append(f"randint({low},{high})")
      return self.values.pop(0)

  rng = ScriptedRng([0.5, 0.9, 0.01, 40])
  builder = example_builder.ExampleBuilder(tokenizer, 128, rng=rng)
  the, of, and_, to = tokenizer.convert_tokens_to_ids(["the", "of", "and", "to"])
  # first_target = (128 - 3) // 2 = 62. 50 -> A; 20 overflows -> coin 0.9 -> B;
  # 5 fits (50 + 5 < 62) -> A again; 60 -> B without a coin (B non-empty).
  assert builder.add_line("the " * 50) is None
  assert builder.add_line("of " * 20) is None
  assert builder.add_line("and " * 5) is None
  example = builder.add_line("to " * 60)
  assert rng.calls == ["random", "random", "random", "randint(5,128)"]
  ids = list(example.features.feature["input_ids"].int64_list.value)
  segments = list(example.features.feature["segment_ids"].int64_list.value)
  # B is truncated to 128 - 55 - 3 = 70 tokens.
  assert ids == [CLS] + [the] * 50 + [and_] * 5 + [SEP] + [of] * 20 + [to] * 50 + [SEP]
  assert segments == [0] * 57 + [1] * 71
  # The next target is 40 (randint), so 39 tokens wait and the 40th completes.
  rng.values = [0.05, 0.2]  # 0.05 < 0.1: single segment; 0.2: target back to 128.
  assert builder.add_line("the " * 39) is None
  example = builder.add_line("of")
  assert rng.calls[4:] == ["random", "random"]
  ids = list(example.features.feature["input_ids"].int64_list.value)
  assert ids[:42] == [CLS] + [the] * 39 + [of] + [SEP] and set(ids[42:]) == {0}
  # Coin heads: an overflowing sentence joins A; then A >= target, so no coin.
  rng.values, rng.calls = [0.3, 0.4, 0.9], []
  builder.add_line("the " * 60)
  example = builder.add_line("of " * 30 + "and " * 40)
  assert rng.calls == ["random", "random", "random"]
  ids = list(example.features.feature["input_ids"].int64_list.value)
  assert ids == [CLS] + [the] * 60 + [of] * 30 + [and_] * 36 + [SEP]
  # An empty line flushes a pending document; with nothing pending it is a no-op.
  rng.values, rng.calls = [0.5, 0.9], []
  assert builder.add_line("") is None and rng.calls == []
  builder.add_line("to to")
  example = builder.add_line("")
  assert list(example.features.feature["input_mask"].int64_list.value) == [1] * 4 + [0] * 124


def test_read_lines_newlines_and_invalid_utf8(tmp_path):
  path = tmp_path / "f.txt"
  path.write_bytes(b"a\rb\nc\r\n\xc3\xa9\n")  # A lone "\r" is not a line break.
  assert list(example_builder.read_lines(str(path))) == ["ab\n", "c\n", "\u00e9\n"]
  path.write_bytes(b"ab\r\ncd\xffef\n")
  with pytest.raises(example_builder.CorpusError, match=re.escape(str(path)) +
                     r": invalid UTF-8 byte 0xff at byte offset 6 \(line 2\)"):
    list(example_builder.read_lines(str(path)))


def _run(corpus, vocab, out, *extra):
  return bpd.main(["--corpus-dir", str(corpus), "--vocab-file", str(vocab),
                   "--output-dir", str(out), *extra])


def test_input_errors_leave_previous_output_alone(corpus_dir, vocab_file, tmp_path, capsys):
  out = tmp_path / "out"
  assert build(corpus_dir, vocab_file, str(out), "--max-seq-length", "16", "--seed", "1") == 0
  before = sorted(os.listdir(out))
  empty_dir = tmp_path / "empty"
  empty_dir.mkdir()
  nested = tmp_path / "nested"
  (nested / "sub").mkdir(parents=True)
  broken = tmp_path / "broken"
  broken.mkdir()
  os.symlink(str(tmp_path / "gone.txt"), str(broken / "a.txt"))
  stray = tmp_path / "stray"
  stray.mkdir()
  (stray / "notes.txt").write_text("keep me")
  bad_vocabs = {"empty.txt": b"", "latin1.txt": b"[UNK]\n[CLS]\nd\xe9j\xe0\n[SEP]\n",
                "no_sep.txt": b"[UNK]\n[CLS]\nthe\n"}
  for name, data in bad_vocabs.items():
    (tmp_path / name).write_bytes(data)
  cases = [
      ((tmp_path / "missing", vocab_file, out), "does not exist"),
      ((empty_dir, vocab_file, out), "is empty"),
      ((nested, vocab_file, out), "contains the directory sub"),
      ((broken, vocab_file, out), "a.txt is not readable"),
      ((corpus_dir, tmp_path / "nope.txt", out), "nope.txt does not exist"),
      ((corpus_dir, tmp_path / "empty.txt", out), "empty.txt is empty"),
      ((corpus_dir, tmp_path / "latin1.txt", out), "latin1.txt, line 3: invalid UTF-8 byte 0xe9"),
      ((corpus_dir, tmp_path / "no_sep.txt", out), r"no_sep.txt has no line for [SEP]"),
      ((corpus_dir, vocab_file, corpus_dir), f"is the input {corpus_dir}"),
      ((corpus_dir, vocab_file, tmp_path), f"contains the input {corpus_dir}"),
      ((corpus_dir, vocab_file, stray), "holds entries that are not pre-training shards"),
  ]
  for (corpus, vocab, output), message in cases:
    assert _run(corpus, vocab, output) == 1, message
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
  for flags, message in ((["--max-seq-length", "4"], "--max-seq-length must be at least 5"),
                         (["--num-processes", "0"], "--num-processes must be in [1, 1000]")):
    assert _run(corpus_dir, vocab_file, out, *flags) == 2  # A flag error: usage.
    assert message in capsys.readouterr().err
  assert sorted(os.listdir(out)) == before
  assert os.listdir(stray) == ["notes.txt"]
  assert sorted(os.listdir(corpus_dir)) == sorted(map(os.path.basename, CORPUS_SLICES))


def test_invalid_utf8_corpus_file_fails_without_output(corpus_dir, vocab_file, tmp_path,
                                                       capsys):
  bad = os.path.join(corpus_dir, "zz_latin1.txt")
  with open(bad, "wb") as f:
    f.write("Fine first line.\n".encode("utf-8") + b"caf\xe9 au lait\n")
  out = tmp_path / "out"
  assert _run(corpus_dir, vocab_file, out, "--seed", "3") == 1
  err = capsys.readouterr().err
  assert f"{bad}: invalid UTF-8 byte 0xe9 at byte offset 20 (line 2)" in err
  assert not os.path.exists(out) and not os.path.exists(str(out) + ".incomplete")


@pytest.mark.slow  # A subprocess and two spawned workers.
def test_cli_subprocess_exit_codes_two_processes(corpus_dir, vocab_file, tmp_path):
  """A worker failing in a child process makes the whole command fail (exit 1)."""
  bad = os.path.join(corpus_dir, "zz_bad.txt")
  with open(bad, "wb") as f:
    f.write(b"ok\n\xff\n")
  out = tmp_path / "out"
  command = [sys.executable, os.path.join(REPO_ROOT, "build_pretraining_dataset.py"),
             "--corpus-dir", corpus_dir, "--vocab-file", vocab_file, "--output-dir", str(out),
             "--num-processes", "2", "--max-seq-length", "16"]
  result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 1, result.stderr
  # zz_bad.txt is the 4th sorted file, so job 1 owns it.
  assert f"Job 1: error: {bad}: invalid UTF-8 byte 0xff at byte offset 3 (line 2)" in (
      result.stderr)
  assert "error: job 1 (exit code 1) failed" in result.stderr
  assert "Job 0: Done!" in result.stdout
  assert not os.path.exists(out) and not os.path.exists(str(out) + ".incomplete")


def _run_builder(corpus, vocab_file, out, *flags):
  """The builder as a user runs it; the timeout is a hang guard, not a timing assertion."""
  return subprocess.run(
      [sys.executable, os.path.join(REPO_ROOT, "build_pretraining_dataset.py"), "--corpus-dir",
       str(corpus), "--vocab-file", vocab_file, "--output-dir", str(out), *flags],
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=180)


@pytest.mark.slow  # Two subprocesses.
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="FIFOs and /dev/zero")
def test_fifo_and_device_in_corpus_are_skipped_with_a_warning(corpus_dir, vocab_file,
                                                              tmp_path):
  """A FIFO would block for ever and /dev/zero never ends: both are skipped, never opened."""
  flags = ["--max-seq-length", "16", "--seed", "4", "--num-processes", "2"]
  expected = tmp_path / "expected"
  assert build(corpus_dir, vocab_file, str(expected), *flags) == 0
  fifo, zero = os.path.join(corpus_dir, "zz_fifo"), os.path.join(corpus_dir, "zz_zero")
  os.mkfifo(fifo)  # Sorted 4th and 5th: one for each job.
  os.symlink("/dev/zero", zero)
  out = tmp_path / "out"
  result = _run_builder(corpus_dir, vocab_file, out, *flags)
  assert result.returncode == 0, result.stderr
  assert [line for line in result.stderr.splitlines() if line.startswith("warning:")] == [
      f"warning: skipping {fifo}: it is a FIFO (named pipe), not a regular file (never "
      "opened).",
      f"warning: skipping {zero}: it is a character device, not a regular file (never opened)."]
  assert snapshot(out) == snapshot(expected)  # The same build as without them.


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="FIFOs and /dev/zero")
def test_corpus_of_only_fifos_and_devices_is_an_error(vocab_file, tmp_path):
  corpus = tmp_path / "corpus"
  corpus.mkdir()
  os.mkfifo(corpus / "a_fifo")
  os.symlink("/dev/zero", corpus / "b_zero")
  result = _run_builder(corpus, vocab_file, tmp_path / "out")
  assert result.returncode == 1, result.stderr
  assert [line for line in result.stderr.splitlines() if line.startswith("error:")] == [
      f"error: Corpus directory {corpus} holds no regular file (2 skipped: FIFOs, sockets or "
      "devices); nothing to build."], result.stderr
  assert result.stderr.count("warning: skipping") == 2 and "Traceback" not in result.stderr
  assert sorted(os.listdir(tmp_path)) == ["corpus"]


@pytest.mark.skipif(not hasattr(signal, "SIGALRM"), reason="the hang guard needs SIGALRM")
def test_read_lines_refuses_a_fifo_without_opening_it(tmp_path):
  fifo = tmp_path / "fifo"
  os.mkfifo(fifo)

  def hang_guard(*_):
    raise TimeoutError("read_lines blocked opening the FIFO")

  previous = signal.signal(signal.SIGALRM, hang_guard)
  signal.alarm(30)
  try:
    with pytest.raises(example_builder.CorpusError, match=f"{re.escape(str(fifo))} is a FIFO"):
      list(example_builder.read_lines(str(fifo)))  # Opening it would block: there is no writer.
  finally:
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


# --- serialization and TFRecord framing without TensorFlow ------------------------


def test_serialize_example_matches_tensorflow():
  rng = random.Random(4)
  special = [0, 1, 127, 128, 16383, 16384, 30521, 2**31, 2**63 - 1, -1, -2**63]
  for length in (1, 5, 33, 128, 512):
    for _ in range(10):
      features = tfrecord_writer.ExampleFeatures(
          [rng.choice(special + [rng.randint(0, 30521)]) for _ in range(length)],
          [rng.randint(0, 1) for _ in range(length)],
          [rng.choice([0, 1, 200, 300]) for _ in range(length)])
      serialized = tfrecord_writer.serialize_example(features)
      example = features.to_tf_example()
      assert serialized == example.SerializeToString(deterministic=True)
      assert tf.train.Example.FromString(serialized) == example
  empty = tfrecord_writer.ExampleFeatures([], [], [])
  assert tfrecord_writer.serialize_example(empty) == empty.to_tf_example().SerializeToString(
      deterministic=True)
  # Any int sequence, e.g. a numpy array (whose bytes() would be its raw buffer).
  array = tfrecord_writer.ExampleFeatures(np.array([5, 200, 30000]), [1, 1, 1], (0, 0, 1))
  assert tfrecord_writer.serialize_example(array) == tfrecord_writer.ExampleFeatures(
      [5, 200, 30000], [1, 1, 1], [0, 0, 1]).to_tf_example().SerializeToString(deterministic=True)


def _bytewise_crc32c(data):
  """CRC-32C bit by bit (reflected polynomial 0x82F63B78), the textbook definition."""
  crc = 0xFFFFFFFF
  for byte in data:
    crc ^= byte
    for _ in range(8):
      crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
  return crc ^ 0xFFFFFFFF


def test_crc32c_known_values_and_block_boundaries():
  # RFC 3720 B.4 test vectors and the classic check value.
  assert tfrecord_writer.crc32c(b"123456789") == 0xE3069283
  assert tfrecord_writer.crc32c(bytes(32)) == 0x8A9136AA
  assert tfrecord_writer.crc32c(b"\xff" * 32) == 0x62A8AB43
  assert tfrecord_writer.crc32c(bytes(range(32))) == 0x46DD794E
  assert tfrecord_writer.crc32c(b"") == 0
  rng = random.Random(8)
  block = tfrecord_writer._Crc32c.BLOCK
  for size in list(range(40)) + [block - 1, block, block + 1, block + 3, block + 4,
                                 2 * block + 2, 3000]:
    data = bytes(rng.getrandbits(8) for _ in range(size))
    assert tfrecord_writer.crc32c(data) == _bytewise_crc32c(data), size


def test_tfrecord_writer_matches_tensorflow(tmp_path):
  rng = random.Random(9)
  records = [b"", b"x", b"\x00" * 4] + [
      bytes(rng.getrandbits(8) for _ in range(rng.choice([3, 600, 1024, 1500, 2100])))
      for _ in range(30)]
  ours, theirs = str(tmp_path / "ours"), str(tmp_path / "theirs")
  writer = tfrecord_writer.TFRecordFileWriter(ours)
  for record in records:
    writer.write(record)
  writer.close()
  with tf.io.TFRecordWriter(theirs) as tf_writer:
    for record in records:
      tf_writer.write(record)
  with open(ours, "rb") as f1, open(theirs, "rb") as f2:
    assert f1.read() == f2.read()
  assert [r.numpy() for r in tf.data.TFRecordDataset(ours)] == records


def test_local_build_does_not_import_tensorflow(corpus_dir, vocab_file, tmp_path):
  """TF is needed only for remote paths: workers start fast without it."""
  out = str(tmp_path / "out")
  code = (f"import sys; import build_pretraining_dataset as bpd; "
          f"code = bpd.main(['--corpus-dir', {corpus_dir!r}, '--vocab-file', {vocab_file!r}, "
          f"'--output-dir', {out!r}, '--seed', '3', '--max-seq-length', '40']); "
          f"print('exit', code, 'tensorflow' in sys.modules)")
  result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=300)
  assert result.stdout.strip().split("\n")[-1] == "exit 0 False", result.stderr
  assert read_shards(out, 40)  # Readable by tf.data.


# --- counts, empty corpora, safe replacement, signals (issue 13) ------------------


def snapshot(directory):
  """{name: bytes} of every file in `directory`."""
  result = {}
  for name in sorted(os.listdir(directory)):
    with open(os.path.join(directory, name), "rb") as f:
      result[name] = f.read()
  return result


def test_summary_counts_hand_computed(vocab_file, tmp_path, capsys):
  """20 tokens on one line at max length 8: 6 kept, 14 cut; a second document of 2 tokens."""
  corpus = tmp_path / "corpus"
  corpus.mkdir()
  (corpus / "a.txt").write_text("the " * 20 + "\n\n\nof of\n", encoding="utf-8")
  (corpus / "b.txt").write_text("\n   \n\n", encoding="utf-8")  # Blank: no document.
  out = tmp_path / "out"
  assert _run(corpus, vocab_file, out, "--max-seq-length", "8", "--seed", "0") == 0
  last = capsys.readouterr().out.strip().split("\n")[-1]
  assert last == (f"Wrote 2 examples (8 tokens) from 2 documents to {out}; 14 tokens (63.6%) "
                  "were cut by the --max-seq-length 8 truncation. Split long lines (e.g. one "
                  "sentence per line) to keep more of the text.")
  the, of = 1996, 1997
  records = [r for rs in read_shards(str(out), 8).values() for r in rs]
  assert sorted(r[0] for r in records) == sorted([[CLS] + [the] * 6 + [SEP],
                                                  [CLS, of, of, SEP, 0, 0, 0, 0]])


def test_blank_corpus_fails_and_keeps_previous_dataset(corpus_dir, vocab_file, tmp_path,
                                                       capsys):
  out = tmp_path / "out"
  assert build(corpus_dir, vocab_file, str(out), "--max-seq-length", "16", "--seed", "1") == 0
  before = snapshot(out)
  blank = tmp_path / "blank"
  blank.mkdir()
  (blank / "a.txt").write_text("\n" * 50, encoding="utf-8")
  (blank / "b.txt").write_text(" \n\t\n", encoding="utf-8")
  capsys.readouterr()
  for target in (out, tmp_path / "fresh"):
    assert _run(blank, vocab_file, target) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no examples written") and err.count("\n") == 1, err
  assert snapshot(out) == before
  assert sorted(os.listdir(tmp_path)) == ["blank", "corpus", "out"]  # No staging, no "fresh".


def test_failed_rebuild_keeps_previous_shards_byte_identical(corpus_dir, vocab_file, tmp_path,
                                                             capsys):
  out = tmp_path / "out"
  assert build(corpus_dir, vocab_file, str(out), "--max-seq-length", "16", "--seed", "1") == 0
  before = snapshot(out)
  with open(os.path.join(corpus_dir, "zz_bad.txt"), "wb") as f:
    f.write(b"fine\n\xff\n")
  assert build(corpus_dir, vocab_file, str(out), "--max-seq-length", "20", "--seed", "2") == 1
  assert "invalid UTF-8 byte 0xff" in capsys.readouterr().err
  assert snapshot(out) == before
  assert sorted(os.listdir(tmp_path)) == ["corpus", "out"]
  # A successful rebuild replaces them (and leaves nothing else behind).
  os.remove(os.path.join(corpus_dir, "zz_bad.txt"))
  assert build(corpus_dir, vocab_file, str(out), "--max-seq-length", "20", "--seed", "2") == 0
  assert snapshot(out) != before and len(os.listdir(out)) == 1000
  assert sorted(os.listdir(tmp_path)) == ["corpus", "out"]


def test_half_done_swap_is_recovered(corpus_dir, vocab_file, tmp_path):
  """A builder killed between its two renames left only OUT.replaced: it comes back."""
  out = tmp_path / "out"
  assert build(corpus_dir, vocab_file, str(out), "--max-seq-length", "16", "--seed", "1") == 0
  before = snapshot(out)
  os.rename(out, str(out) + ".replaced")
  dataset_builder._recover_replaced(str(out))
  assert snapshot(out) == before and not os.path.exists(str(out) + ".replaced")
  # Killed after the swap: OUT.replaced next to OUT is the superseded dataset.
  shutil.copytree(out, str(out) + ".replaced")
  dataset_builder._recover_replaced(str(out))
  assert snapshot(out) == before and not os.path.exists(str(out) + ".replaced")


def _children(pid):
  """Pids of the spawned workers (multiprocessing spawn_main) whose parent is `pid`."""
  found = []
  for entry in os.listdir("/proc"):
    if not entry.isdigit():
      continue
    try:
      with open(f"/proc/{entry}/stat") as f:
        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
      with open(f"/proc/{entry}/cmdline", "rb") as f:
        cmdline = f.read()
    except OSError:
      continue
    if ppid == pid and b"spawn_main" in cmdline:
      found.append(int(entry))
  return found


def _alive(pid):
  """Running (a zombie waiting for its reaper counts as ended)."""
  try:
    with open(f"/proc/{pid}/stat") as f:
      return f.read().rsplit(")", 1)[1].split()[0] != "Z"
  except OSError:
    return False


def _wait_for(condition, what, limit=120.0):
  """Polls `condition` (a hang guard, not a timing assertion)."""
  import time
  deadline = time.monotonic() + limit
  while not condition():
    assert time.monotonic() < deadline, f"gave up waiting for {what}"
    time.sleep(0.1)


def _write_big_corpus_file(path, megabytes):
  """About `megabytes` MB of real text: the corpus slices, repeated."""
  text = "".join(open(src, encoding="utf-8").read() + "\n" for src in CORPUS_SLICES)
  block = text * max(1, (1 << 20) // len(text))
  with open(path, "w", encoding="utf-8") as f:
    for _ in range(megabytes):
      f.write(block)


@pytest.mark.slow  # A subprocess and two spawned workers, twice.
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("signum,processes", [(signal.SIGTERM, 2), (signal.SIGKILL, 2),
                                               (signal.SIGTERM, 1)])
def test_killed_builder_stops_workers_and_removes_staging(corpus_dir, vocab_file, tmp_path,
                                                          signum, processes):
  """Workers busy with big corpus files (seconds of work each) die with the builder."""
  out = tmp_path / "out"
  assert build(corpus_dir, vocab_file, str(out), "--max-seq-length", "16", "--seed", "1") == 0
  before = snapshot(out)
  big_files = [os.path.join(corpus_dir, name) for name in ("zz_big0", "zz_big1")]
  for path in big_files:  # Sorted 4th and 5th: one for each job.
    _write_big_corpus_file(path, megabytes=32)  # several seconds of work per job
  staging = str(out) + ".incomplete"
  log = tmp_path / "log"
  workers = []
  try:
    with open(log, "w") as log_file:
      builder = subprocess.Popen(
          [sys.executable, os.path.join(REPO_ROOT, "build_pretraining_dataset.py"),
           "--corpus-dir", corpus_dir, "--vocab-file", vocab_file, "--output-dir", str(out),
           "--num-processes", str(processes), "--max-seq-length", "16"],
          cwd=REPO_ROOT, stdout=log_file, stderr=subprocess.PIPE, text=True)
      try:
        expected = processes if processes > 1 else 0  # One process: no worker processes.
        # Every job must be running its loop: a worker still starting up when the builder
        # dies never runs our code (the next start removes the staging dir then).
        _wait_for(lambda: (len(_children(builder.pid)) == expected and os.path.isdir(staging)
                           and log.read_text().count("Writing tf examples") == processes),
                  "the workers and the staging dir", limit=300)
        workers = _children(builder.pid)
        builder.send_signal(signum)
        _, err = builder.communicate(timeout=300)
      finally:
        if builder.poll() is None:
          builder.kill()
          builder.wait()
    # A precondition, not a timing assertion: each job still had megabytes to go.
    assert "Done!" not in log.read_text(), "a job finished before the signal; bigger files?"
    if signum == signal.SIGTERM:
      assert builder.returncode == 130
      assert err.strip().split("\n")[-1] == "error: interrupted" and "Traceback" not in err, err
      assert f"partial output {staging} removed" in err
    else:
      assert builder.returncode == -signal.SIGKILL
    # The orphans got SIGTERM from the kernel (PR_SET_PDEATHSIG) and removed the staging dir.
    _wait_for(lambda: not any(map(_alive, workers)), "the workers to end", limit=300)
    _wait_for(lambda: not os.path.exists(staging), "the staging dir to go", limit=300)
  finally:
    for pid in filter(_alive, workers):  # A failed test leaves no worker behind.
      os.kill(pid, signal.SIGKILL)
    for path in big_files:
      os.remove(path)
  assert snapshot(out) == before
  assert sorted(os.listdir(tmp_path)) == ["corpus", "log", "out"]


def _shard_bytes(directory):
  return {name: open(os.path.join(directory, name), "rb").read()
          for name in sorted(os.listdir(directory))}


def test_vocab_and_output_inside_the_corpus_dir_are_not_corpus_text(tmp_path, capsys):
  """The recipe `--corpus-dir $D --vocab-file $D/vocab.txt --output-dir $D/pretrain_tfrecords`."""
  from tests.conftest import UNCASED_VOCAB
  clean, mixed = tmp_path / "clean", tmp_path / "mixed"
  for directory in (clean, mixed):
    directory.mkdir()
    shutil.copy(CORPUS_SLICES[0], directory)
  shutil.copy(UNCASED_VOCAB, mixed / "vocab.txt")
  flags = ["--max-seq-length", "64", "--seed", "3"]
  assert bpd.main(["--corpus-dir", str(clean), "--vocab-file", UNCASED_VOCAB, "--output-dir",
                   str(tmp_path / "expected"), *flags]) == 0
  for _ in range(2):  # The second run finds its own output dir in the corpus dir.
    assert bpd.main(["--corpus-dir", str(mixed), "--vocab-file", str(mixed / "vocab.txt"),
                     "--output-dir", str(mixed / "pretrain_tfrecords"), *flags]) == 0
    assert _shard_bytes(mixed / "pretrain_tfrecords") == _shard_bytes(tmp_path / "expected")
  assert "not reading vocab.txt, pretrain_tfrecords in --corpus-dir" in capsys.readouterr().err
