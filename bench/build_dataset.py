"""Throughput of the tokenizer and of build_pretraining_dataset.py on a real corpus.

    python3 bench/build_dataset.py [--corpus-dir DIR] [--max-seq-length 128]
        [--num-processes 1 2] [--split-files 8] [--repeats 3] [--no-baseline]

Prints one JSON line per configuration:

* `tokenizer` records, `path` "reference" (`FullTokenizer(..., fast=False)`,
  the original's algorithm) and "fast" (the default): one pass over every
  stripped line with a fresh tokenizer (cold caches; construction not
  timed), in word pieces and MB of UTF-8 text per second of wall time and
  per second of this process's CPU time (`*_per_cpu_sec`: the per-core rate,
  less disturbed by other load on the machine). Runs alternate between the
  two paths and the best of `--repeats` is kept, so `speedup_cpu` compares
  like with like; `identical_ids` says whether both gave the same ids on
  every line (compared through a hash of each line's ids).
* `build_pretraining_dataset` records: the builder's `main()` in-process
  with `--seed 0` for each `--num-processes` (the multi-process timings
  include starting the `spawn` workers); `cpu_seconds` adds the workers' CPU
  time. `tokens_per_sec` counts non-padding tokens written, [CLS]/[SEP]
  included.

Default corpus: the bundled `data/corpus/moby_dick.txt`, cut at chapter
boundaries into `--split-files` files so that several workers have files to
share. `--corpus-dir` may hold text files or folders of text files (like the
shared corpus); the files are linked into one flat temporary dir.
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from typing import List, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# TensorFlow and bench.common (which imports it) are imported inside functions:
# the builder's `spawn` workers re-import this main module, and must stay light.
from model import tokenization  # noqa: E402
from pretrain import example_builder  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILDER = os.path.join(REPO_ROOT, "build_pretraining_dataset.py")
DEFAULT_CORPUS = os.path.join(REPO_ROOT, "data", "corpus", "moby_dick.txt")
DEFAULT_VOCAB = os.path.join(REPO_ROOT, "data", "vocab", "uncased_vocab.txt")


def split_corpus(path: str, num_files: int, directory: str) -> None:
  """Writes `path` as `num_files` files of whole documents (cut at blank lines)."""
  with open(path, encoding="utf-8") as f:
    documents = f.read().strip("\n").split("\n\n")
  per_file = -(-len(documents) // num_files)
  for i in range(num_files):
    chunk = documents[i * per_file:(i + 1) * per_file]
    if chunk:
      with open(os.path.join(directory, f"part-{i:03d}.txt"), "w", encoding="utf-8") as f:
        f.write("\n\n".join(chunk) + "\n")


def flatten_corpus(corpus_dir: str, directory: str) -> None:
  """Links every file of `corpus_dir` and of its sub-folders into `directory`."""
  for name in sorted(os.listdir(corpus_dir)):
    path = os.path.join(corpus_dir, name)
    if os.path.isdir(path):
      for inner in sorted(os.listdir(path)):
        os.symlink(os.path.abspath(os.path.join(path, inner)),
                   os.path.join(directory, f"{name}__{inner}"))
    else:
      os.symlink(os.path.abspath(path), os.path.join(directory, name))


def peak_rss_mb() -> float:
  """Peak resident memory of this process or of any finished child, in MiB."""
  own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
  return max(own, children) / 1024


def cpu_seconds() -> float:
  """User + system CPU time of this process and of its finished children."""
  total = 0.0
  for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
    usage = resource.getrusage(who)
    total += usage.ru_utime + usage.ru_stime
  return total


def corpus_lines(corpus_dir: str) -> List[str]:
  """Every line of every file, read and stripped as the builder does."""
  lines = []
  for name in sorted(os.listdir(corpus_dir)):
    path = os.path.join(corpus_dir, name)
    lines.extend(line.strip() for line in example_builder.read_lines(path))
  return lines


def tokenize_all(lines: List[str], vocab_file: str,
                 fast: bool) -> Tuple[float, float, int, List[int]]:
  """(wall s, CPU s, tokens, hash of each line's ids) of one pass with a fresh tokenizer.

  Only hashes are kept: keeping millions of ids alive would slow the pass
  down through garbage collection, which the builder never pays.
  """
  tokenizer = tokenization.FullTokenizer(vocab_file, fast=fast)
  tokenize_to_ids = tokenizer.tokenize_to_ids
  n_tokens = 0
  hashes = []
  wall, cpu = time.perf_counter(), time.process_time()
  for line in lines:
    ids = tokenize_to_ids(line)
    n_tokens += len(ids)
    hashes.append(hash(tuple(ids)))
  return time.perf_counter() - wall, time.process_time() - cpu, n_tokens, hashes


def bench_tokenizer(corpus_dir: str, vocab_file: str, repeats: int,
                    baseline: bool) -> List[dict]:
  """Best-of-`repeats` records of the reference and fast paths, run alternately."""
  lines = corpus_lines(corpus_dir)
  n_bytes = sum(len(line.encode("utf-8")) for line in lines)
  paths = [False, True] if baseline else [True]
  best = {}
  hashes = {}
  for repeat in range(repeats):
    for fast in (paths if repeat % 2 == 0 else paths[::-1]):
      wall, cpu, n_tokens, hashes[fast] = tokenize_all(lines, vocab_file, fast)
      old = best.get(fast, (wall, cpu))
      best[fast] = (min(wall, old[0]), min(cpu, old[1]), n_tokens)
  identical = hashes[True] == hashes[False] if baseline else None
  records = []
  for fast in paths:
    wall, cpu, n_tokens = best[fast]
    record = dict(benchmark="tokenizer", path="fast" if fast else "reference",
                  tokens_per_sec=n_tokens / wall, mb_text_per_sec=n_bytes / 1e6 / wall,
                  tokens_per_cpu_sec=n_tokens / cpu, mb_text_per_cpu_sec=n_bytes / 1e6 / cpu,
                  num_processes=1, seconds=wall, cpu_seconds=cpu, repeats=repeats,
                  tokens=n_tokens, mb_text=n_bytes / 1e6, lines=len(lines))
    if fast and baseline:
      record.update(identical_ids=identical, speedup_cpu=best[False][1] / cpu,
                    speedup_wall=best[False][0] / wall)
    records.append(record)
  return records


def count_output(output_dir: str, max_seq_length: int) -> tuple:
  """(examples, non-padding tokens) in the shards of `output_dir`, read with tf.data."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  paths = [os.path.join(output_dir, n) for n in sorted(os.listdir(output_dir))
           if os.path.getsize(os.path.join(output_dir, n)) > 0]
  spec = {"input_mask": tf.io.FixedLenFeature([max_seq_length], tf.int64)}
  examples = tokens = 0
  for batch in tf.data.TFRecordDataset(paths).batch(4096):
    mask = tf.io.parse_example(batch, spec)["input_mask"]
    examples += int(mask.shape[0])
    tokens += int(tf.reduce_sum(mask))
  return examples, tokens


def bench_builder(corpus_dir: str, vocab_file: str, max_seq_length: int,
                  num_processes: int, work_dir: str) -> dict:
  """Runs build_pretraining_dataset.py once and times it (stdout progress is discarded)."""
  output_dir = os.path.join(work_dir, f"out_p{num_processes}")
  n_bytes = sum(os.path.getsize(os.path.join(corpus_dir, n)) for n in os.listdir(corpus_dir))
  argv = ["--corpus-dir", corpus_dir, "--vocab-file", vocab_file, "--output-dir", output_dir,
          "--max-seq-length", str(max_seq_length), "--num-processes", str(num_processes),
          "--seed", "0"]
  start, cpu_start = time.perf_counter(), cpu_seconds()
  # As a user runs it: its own process (and its workers), progress lines discarded.
  process = subprocess.run([sys.executable, BUILDER, *argv], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True, check=False)
  seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu_start
  if process.returncode != 0:
    raise RuntimeError(f"build_pretraining_dataset.py {' '.join(argv)} exited with "
                       f"{process.returncode}: {process.stderr[-2000:]}")
  examples, tokens = count_output(output_dir, max_seq_length)
  return dict(benchmark="build_pretraining_dataset", seq=max_seq_length,
              examples_per_sec=examples / seconds, tokens_per_sec=tokens / seconds,
              mb_text_per_sec=n_bytes / 1e6 / seconds, num_processes=num_processes,
              seconds=seconds, cpu_seconds=cpu, examples=examples, tokens=tokens,
              mb_text=n_bytes / 1e6,
              builder_command="python3 build_pretraining_dataset.py " + " ".join(argv))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--corpus-dir", default=None,
                      help="Directory of text files or of folders of text files (default: "
                           "the bundled Moby-Dick, split).")
  parser.add_argument("--vocab-file", default=DEFAULT_VOCAB)
  parser.add_argument("--max-seq-length", type=int, default=128)
  parser.add_argument("--num-processes", type=int, nargs="*", default=[1, 2],
                      help="Builder runs (none: tokenizer only).")
  parser.add_argument("--split-files", type=int, default=8,
                      help="Files the default corpus is cut into.")
  parser.add_argument("--repeats", type=int, default=3,
                      help="Tokenizer passes per path; the best is reported.")
  parser.add_argument("--no-baseline", dest="baseline", action="store_false",
                      help="Skip the (slow) reference tokenizer.")
  args = parser.parse_args()
  from bench import common  # pylint: disable=import-outside-toplevel
  device = common.describe_device()
  with tempfile.TemporaryDirectory(prefix="bench_build_dataset_") as work_dir:
    corpus_dir = os.path.join(work_dir, "corpus")
    os.makedirs(corpus_dir)
    if args.corpus_dir is None:
      split_corpus(DEFAULT_CORPUS, args.split_files, corpus_dir)
    else:
      flatten_corpus(args.corpus_dir, corpus_dir)
    for record in bench_tokenizer(corpus_dir, args.vocab_file, args.repeats, args.baseline):
      common.emit(dict(record, device=device, peak_memory_mb=peak_rss_mb(),
                       command=common.command_line()))
    for num_processes in args.num_processes:
      record = bench_builder(corpus_dir, args.vocab_file, args.max_seq_length, num_processes,
                             work_dir)
      common.emit(dict(record, device=device, peak_memory_mb=peak_rss_mb(),
                       command=common.command_line()))


if __name__ == "__main__":
  main()
