"""Pre-processes the OpenWebText corpus into pre-training tfrecords (the quick-start).

    python3 build_openwebtext_pretraining_dataset.py --data-dir DATA \\
        [--max-seq-length 128] [--num-processes 1] [--seed S]

Reads `DATA/vocab.txt` and the tar archives in `DATA/openwebtext/` (the OWT
release's `*.xz` tarballs of `.txt` files), extracts each archive into the
scratch dir `DATA/tmp/job_<id>/` and writes
`DATA/pretrain_tfrecords/pretrain_data.tfrecord-<i>-of-1000` with the
`ExampleWriter` of `build_pretraining_dataset.py` (see
docs/cli.md#build_openwebtext_pretraining_datasetpy). Blank lines are ignored: every extracted file
is one document.
"""
from __future__ import annotations

import argparse
import lzma
import os
import sys
import tarfile
import time
import zlib
from typing import Optional, Sequence

from pretrain import dataset_builder, example_builder
from util import files


def extract_archive(archive: str, destination: str) -> None:
  """Extracts a (possibly compressed) tar archive into `destination`.

  Raises:
    ValueError: `archive` is not a readable tar archive.
  """
  try:
    with tarfile.open(archive) as tar:  # Compression is detected automatically.
      if hasattr(tarfile, "data_filter"):  # Refuses absolute paths, "..", devices.
        tar.extractall(destination, filter="data")
      else:
        tar.extractall(destination)
  except (tarfile.TarError, EOFError, lzma.LZMAError, zlib.error) as e:
    raise ValueError(f"{archive} is not a readable tar archive ({e}); every entry of "
                     "<data-dir>/openwebtext must be an OpenWebText tarball.") from None


def write_examples(job_id: int, args: argparse.Namespace,
                   shard_dir: str) -> example_builder.BuildStats:
  """One worker: extracts its share of the archives and writes their examples."""
  job_tmp_dir = os.path.join(args.data_dir, "tmp", "job_" + str(job_id))
  owt_dir = os.path.join(args.data_dir, "openwebtext")
  log = dataset_builder.job_logger(job_id)
  rng = dataset_builder.job_rng(args.seed, job_id)
  log("Creating example writer")
  example_writer = example_builder.ExampleWriter(
      job_id=job_id, vocab_file=os.path.join(args.data_dir, "vocab.txt"),
      output_dir=shard_dir, max_seq_length=args.max_seq_length, num_jobs=args.num_processes,
      blanks_separate_docs=False, do_lower_case=args.do_lower_case,
      strip_accents=args.strip_accents, rng=rng)
  log("Writing tf examples")
  archives = dataset_builder.check_input_files(owt_dir, "OpenWebText directory", warn=False)
  fnames = dataset_builder.job_files(archives, job_id, args.num_processes)
  rng.shuffle(fnames)
  start_time = time.time()
  try:
    for file_no, fname in enumerate(fnames):
      if file_no > 0 and file_no % 10 == 0:
        log(dataset_builder.progress_message(file_no, len(fnames), start_time,
                                             example_writer.n_written))
      # The scratch dir is re-created per archive and, as in the original,
      # left in place at the end (docs/cli.md#differences-from-the-original).
      files.rmkdir(job_tmp_dir)
      extract_archive(os.path.join(owt_dir, fname), job_tmp_dir)
      # Sorted before the shuffle (the original shuffled the file system's
      # listing order), so that a seeded run is reproducible.
      extracted_files = sorted(os.listdir(job_tmp_dir))
      rng.shuffle(extracted_files)
      for txt_fname in extracted_files:
        example_writer.write_examples(os.path.join(job_tmp_dir, txt_fname))
  finally:
    example_writer.finish()
  log("Done!")
  return example_writer.stats


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
  """Parses the command line (flags and defaults of the original, plus --seed)."""
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--data-dir", required=True,
                      help="Location of data (vocab file, corpus, etc).")
  dataset_builder.add_tokenizer_args(parser)
  return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
  """Builds the dataset; returns the exit code (one error line: 2 bad flag, 1 bad input)."""
  args = parse_args(argv)

  def build() -> None:
    if not os.path.isdir(args.data_dir):
      raise FileNotFoundError(f"Data directory {args.data_dir} does not exist.")
    vocab_file = os.path.join(args.data_dir, "vocab.txt")
    owt_dir = os.path.join(args.data_dir, "openwebtext")
    dataset_builder.check_input_files(owt_dir, "OpenWebText directory")
    dataset_builder.check_vocab(vocab_file)
    output_dir = os.path.join(args.data_dir, "pretrain_tfrecords")
    dataset_builder.check_output_dir(output_dir, [owt_dir, vocab_file])
    dataset_builder.build_shards(write_examples, args, output_dir)

  return dataset_builder.run_build(args, build)


if __name__ == "__main__":
  sys.exit(main())
