"""Throughput of the tokenizer and of build_pretraining_dataset.py on a real corpus.

    python3 bench/build_dataset.py [--corpus-dir DIR] [--max-seq-length 128]
        [--num-processes 1 2] [--split-files 8]

Prints one JSON line per configuration: the tokenizer alone (word pieces and
MB of UTF-8 text per second, one pass over every line) and the full builder
(`main()` in-process with `--seed 0`, for each `--num-processes`; the
multi-process timings include starting the `spawn` workers, each of which
imports TensorFlow). `tokens_per_sec` of the builder counts non-padding
tokens written, [CLS]/[SEP] included. Default corpus: the bundled
`data/corpus/moby_dick.txt`, cut at chapter boundaries into `--split-files`
files so that several workers have files to share.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import resource
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # noqa: E402

import build_pretraining_dataset as bpd  # noqa: E402
from bench import common  # noqa: E402
from model import tokenization  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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


def peak_rss_mb() -> float:
  """Peak resident memory of this process or of any finished child, in MiB."""
  own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
  return max(own, children) / 1024


def bench_tokenizer(corpus_dir: str, vocab_file: str) -> dict:
  """Tokenizes every line of every corpus file once with a fresh tokenizer."""
  lines = []
  for name in sorted(os.listdir(corpus_dir)):
    lines.extend(bpd.read_lines(os.path.join(corpus_dir, name)))
  n_bytes = sum(len(line.encode("utf-8")) for line in lines)
  tokenizer = tokenization.FullTokenizer(vocab_file)
  start = time.perf_counter()
  n_tokens = sum(len(tokenizer.convert_tokens_to_ids(tokenizer.tokenize(line)))
                 for line in lines)
  seconds = time.perf_counter() - start
  return dict(benchmark="tokenizer", tokens_per_sec=n_tokens / seconds,
              mb_text_per_sec=n_bytes / 1e6 / seconds, num_processes=1, seconds=seconds,
              tokens=n_tokens, mb_text=n_bytes / 1e6)


def count_output(output_dir: str, max_seq_length: int) -> tuple:
  """(examples, non-padding tokens) in the shards of `output_dir`."""
  paths = [os.path.join(output_dir, n) for n in sorted(os.listdir(output_dir))
           if os.path.getsize(os.path.join(output_dir, n)) > 0]
  spec = {"input_mask": tf.io.FixedLenFeature([max_seq_length], tf.int64)}
  examples = tokens = 0
  for batch in tf.data.TFRecordDataset(paths).batch(4096):
    mask = tf.io.parse_example(batch, spec)["input_mask"]
    examples += int(mask.shape[0])
    tokens += int(tf.reduce_sum(mask))
  return examples, tokens


@contextlib.contextmanager
def quiet_stdout():
  """Sends file descriptor 1 to /dev/null, so spawned workers' progress lines vanish too."""
  sys.stdout.flush()
  saved = os.dup(1)
  devnull = os.open(os.devnull, os.O_WRONLY)
  try:
    os.dup2(devnull, 1)
    with contextlib.redirect_stdout(io.StringIO()):
      yield
  finally:
    sys.stdout.flush()
    os.dup2(saved, 1)
    os.close(saved)
    os.close(devnull)


def bench_builder(corpus_dir: str, vocab_file: str, max_seq_length: int,
                  num_processes: int, work_dir: str) -> dict:
  """Runs the builder's main() once and times it (stdout progress is discarded)."""
  output_dir = os.path.join(work_dir, f"out_p{num_processes}")
  n_bytes = sum(os.path.getsize(os.path.join(corpus_dir, n)) for n in os.listdir(corpus_dir))
  argv = ["--corpus-dir", corpus_dir, "--vocab-file", vocab_file, "--output-dir", output_dir,
          "--max-seq-length", str(max_seq_length), "--num-processes", str(num_processes),
          "--seed", "0"]
  start = time.perf_counter()
  with quiet_stdout():
    code = bpd.main(argv)
  seconds = time.perf_counter() - start
  if code != 0:
    raise RuntimeError(f"build_pretraining_dataset.py {' '.join(argv)} exited with {code}")
  examples, tokens = count_output(output_dir, max_seq_length)
  return dict(benchmark="build_pretraining_dataset", seq=max_seq_length,
              examples_per_sec=examples / seconds, tokens_per_sec=tokens / seconds,
              mb_text_per_sec=n_bytes / 1e6 / seconds, num_processes=num_processes,
              seconds=seconds, examples=examples, tokens=tokens,
              builder_command="python3 build_pretraining_dataset.py " + " ".join(argv))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--corpus-dir", default=None,
                      help="Directory of text files (default: the bundled Moby-Dick, split).")
  parser.add_argument("--vocab-file", default=DEFAULT_VOCAB)
  parser.add_argument("--max-seq-length", type=int, default=128)
  parser.add_argument("--num-processes", type=int, nargs="+", default=[1, 2])
  parser.add_argument("--split-files", type=int, default=8,
                      help="Files the default corpus is cut into.")
  args = parser.parse_args()
  device = common.describe_device()
  with tempfile.TemporaryDirectory(prefix="bench_build_dataset_") as work_dir:
    corpus_dir = args.corpus_dir
    if corpus_dir is None:
      corpus_dir = os.path.join(work_dir, "corpus")
      os.makedirs(corpus_dir)
      split_corpus(DEFAULT_CORPUS, args.split_files, corpus_dir)
    records = [bench_tokenizer(corpus_dir, args.vocab_file)]
    records[0]["peak_memory_mb"] = peak_rss_mb()
    common.emit(dict(records[0], device=device, command=common.command_line()))
    for num_processes in args.num_processes:
      record = bench_builder(corpus_dir, args.vocab_file, args.max_seq_length, num_processes,
                             work_dir)
      common.emit(dict(record, device=device, peak_memory_mb=peak_rss_mb(),
                       command=common.command_line()))


if __name__ == "__main__":
  main()
