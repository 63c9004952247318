"""Building a pre-training dataset: corpus checks, worker processes, staging and swap.

`build_shards` runs `write_examples` in `--num-processes` worker processes
(each owns some of the 1000 shards, `example_builder.ExampleWriter`), writes
into `<output>.incomplete` and swaps it into place only when every worker
succeeded and at least one example was written, so a failed or interrupted
build leaves a previous dataset untouched. Workers stop when the builder
dies (PR_SET_PDEATHSIG, or a watcher thread elsewhere); SIGTERM and Ctrl-C
remove the staging dir. The checks (`check_common_args`, `check_vocab`,
`check_input_files`, `check_output_dir`) run before anything is written.
`build_pretraining_dataset.py` and `build_openwebtext_pretraining_dataset.py`
are the command lines over this module.
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import multiprocessing
import os
import random
import shutil
import signal
import sys
import threading
import time
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple

from model import tokenization
from pretrain.example_builder import (MIN_SEQ_LENGTH, NUM_OUT_FILES, REQUIRED_TOKENS, SHARD_NAME,
                                      BuildStats, ExampleWriter, Rng, listdir,
                                      special_file_kind)
from pretrain.tfrecord_writer import lazy_tensorflow
from util import cli, files, paths, signals

INCOMPLETE_SUFFIX = ".incomplete"
# The previous dataset while the new one is renamed into place.
REPLACED_SUFFIX = ".replaced"
STATS_FILE = ".job-{}.stats.json"  # A worker process's counts, in the staging dir.
Worker = Callable[[int, argparse.Namespace, str], "BuildStats"]


class JobsFailedError(RuntimeError):
  """One or more worker processes exited with an error."""


class NoExamplesError(cli.DataError):
  """The corpus produced no example (e.g. only blank lines)."""


class Terminated(KeyboardInterrupt):
  """SIGTERM or SIGHUP reached the builder: handled like Ctrl-C (clean up, exit 130)."""


# --- Worker plumbing, shared with build_openwebtext_pretraining_dataset.py ---


def job_rng(seed: Optional[int], job_id: int) -> Rng:
  """The worker's random source: `random.Random(seed + job_id)`, or the global one.

  A `random.Random(S)` draws exactly what the global generator draws after
  `random.seed(S)`, so a seeded run equals the original run under that seed.
  """
  return random if seed is None else random.Random(seed + job_id)


def job_files(sorted_names: Sequence[str], job_id: int, num_jobs: int) -> List[str]:
  """The names whose index in the sorted list is `job_id` modulo `num_jobs`."""
  return [name for i, name in enumerate(sorted_names) if i % num_jobs == job_id]


def job_logger(job_id: int) -> Callable[[str], None]:
  """`log(msg)` printing `Job <id>: <msg>` to stdout, as the original."""
  def log(message: str) -> None:
    print(f"Job {job_id}: {message}", flush=True)
  return log


def progress_message(file_no: int, num_files: int, start_time: float, n_written: int) -> str:
  """The original's progress line (docs/cli.md#build_pretraining_datasetpy); ETA = remaining /
  rate, truncated."""
  elapsed = max(time.time() - start_time, 1e-9)  # The original divides by it.
  return (f"processed {file_no}/{num_files} files ({100.0 * file_no / num_files:.1f}%), "
          f"ELAPSED: {int(elapsed)}s, ETA: {int((num_files - file_no) / (file_no / elapsed))}s, "
          f"{n_written} examples written")


# prctl(2) option: the signal this process gets when its parent dies (Linux).
_PR_SET_PDEATHSIG = 1


def _stop_with_parent(parent_pid: int) -> None:
  """Makes this worker get SIGTERM when the builder process dies (even by SIGKILL).

  Linux: `prctl(PR_SET_PDEATHSIG)`. Elsewhere a daemon thread polls the
  parent pid and signals the main thread.
  """
  armed = False
  if sys.platform.startswith("linux"):
    try:
      libc = ctypes.CDLL(None, use_errno=True)
      armed = libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) == 0
    except (OSError, AttributeError):
      armed = False
  if not armed:
    def watch() -> None:
      while os.getppid() == parent_pid:
        time.sleep(0.5)
      signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)
    threading.Thread(target=watch, daemon=True).start()
  if os.getppid() != parent_pid:  # The parent died before prctl: nobody would signal us.
    raise SystemExit(1)


def _exit_on_sigterm(signum: int, _frame: Any) -> None:
  raise SystemExit(128 + signum)  # Unwinds through `finally` (closes the shards).


def _run_job(worker: Worker, job_id: int, args: argparse.Namespace, shard_dir: str,
             parent_pid: int) -> None:
  """Child-process entry: writes the job's stats file; one error line and exit 1 on bad input.

  The worker stops when the builder dies; an orphaned worker removes the
  staging dir on its way out (the parent cannot any more).
  """
  signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the parent stops the workers.
  signal.signal(signal.SIGTERM, _exit_on_sigterm)
  try:
    _stop_with_parent(parent_pid)
    stats = worker(job_id, args, shard_dir)
    files.write_json(dataclasses.asdict(stats), os.path.join(shard_dir, STATS_FILE.format(job_id)))
  except cli.reported_errors() as e:
    print(f"Job {job_id}: error: {cli.message(e)}", file=sys.stderr, flush=True)
    sys.exit(1)
  except BaseException:
    if os.getppid() != parent_pid:  # Orphaned: the builder was killed.
      shutil.rmtree(shard_dir, ignore_errors=True)
    raise


def _collect_stats(shard_dir: str, num_jobs: int) -> BuildStats:
  """Sums and removes the workers' stats files (only shards stay in the output)."""
  total = BuildStats()
  for job_id in range(num_jobs):
    path = os.path.join(shard_dir, STATS_FILE.format(job_id))
    total += BuildStats(**files.load_json(path))
    os.remove(path)
  return total


def run_jobs(worker: Worker, args: argparse.Namespace, shard_dir: str) -> BuildStats:
  """Runs `worker(job_id, args, shard_dir)` for every job id; returns the summed stats.

  One process: in-process, like the original. Several: one `spawn`
  process per job (TensorFlow is not fork-safe once its runtime started in
  the parent, e.g. in tests; the original used the platform default, fork on
  Linux). A worker imports no TensorFlow for local paths, so it starts in
  well under a second. Workers die with the parent; any exception here
  (Ctrl-C, SIGTERM) terminates them before it propagates.

  Raises:
    JobsFailedError: a worker process exited with a non-zero code.
  """
  if args.num_processes == 1:
    return worker(0, args, shard_dir)
  context = multiprocessing.get_context("spawn")
  processes = [context.Process(target=_run_job,
                               args=(worker, job_id, args, shard_dir, os.getpid()))
               for job_id in range(args.num_processes)]
  try:
    for process in processes:
      process.start()
    for process in processes:
      process.join()
  except BaseException:
    for process in processes:
      if process.is_alive():
        process.terminate()
    for process in processes:
      if process.pid is not None:
        process.join()
    raise
  failed = [f"job {job_id} (exit code {process.exitcode})"
            for job_id, process in enumerate(processes) if process.exitcode != 0]
  if failed:
    raise JobsFailedError(f"{', '.join(failed)} failed; see the messages above. No "
                          "output was kept.")
  return _collect_stats(shard_dir, args.num_processes)


@contextlib.contextmanager
def _termination_raises() -> Iterator[None]:
  """Within the block SIGTERM/SIGHUP raise `Terminated` (once), so cleanup code runs."""
  # A signal the user's shell ignores (nohup) or a caller handles stays as it is.
  signums = [s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None))
             if s is not None and signal.getsignal(s) == signal.SIG_DFL]

  def handler(signum: int, _frame: Any) -> None:
    for s in signums:  # Cleanup must not be interrupted by a second signal.
      signal.signal(s, signal.SIG_IGN)
    raise Terminated(signal.Signals(signum).name)

  with signals.signal_handlers(signums, handler):
    yield


def _only_shards(directory: str) -> bool:
  prefix = SHARD_NAME.split("-")[0] + "-"
  return all(name.startswith(prefix) for name in os.listdir(directory))


def _recover_replaced(output_dir: str) -> None:
  """Finishes a swap a killed builder left halfway: the old dataset is never lost.

  `<out>.replaced` alone: the kill came between the two renames, so it is
  renamed back to `<out>`. Next to `<out>`: the swap completed; it is deleted.
  """
  replaced = output_dir + REPLACED_SUFFIX
  if not os.path.isdir(replaced):
    return
  if not _only_shards(replaced):
    raise cli.DataError(f"{replaced} holds entries that are not pre-training shards; "
                        "move it out of the way.")
  if os.path.exists(output_dir):
    files.rmrf(replaced)
  else:
    os.rename(replaced, output_dir)


def _swap_into_place(staging_dir: str, output_dir: str) -> None:
  """Renames `staging_dir` to `output_dir`; an old `output_dir` is deleted only after."""
  if not os.path.exists(output_dir):
    os.rename(staging_dir, output_dir)
    return
  replaced = output_dir + REPLACED_SUFFIX
  os.rename(output_dir, replaced)
  try:
    os.rename(staging_dir, output_dir)
  except BaseException:
    os.rename(replaced, output_dir)
    raise
  files.rmrf(replaced)


def build_shards(worker: Worker, args: argparse.Namespace, output_dir: str) -> BuildStats:
  """Runs the workers into a staging dir, then swaps it for `output_dir`; prints a summary.

  The shards go to `<output_dir>.incomplete` (re-created empty: a killed
  run's leftovers go). Only when every worker succeeded and at least one
  example was written does it replace `output_dir` (the original deleted the
  output dir first); until then a previous dataset stays untouched. On any
  failure, Ctrl-C or SIGTERM the workers are stopped and the staging dir is
  removed.

  Returns:
    The counts of the build (also printed as one line).

  Raises:
    NoExamplesError: the corpus yields no example.
    JobsFailedError: a worker failed.
    Terminated / KeyboardInterrupt: SIGTERM, SIGHUP or Ctrl-C.
  """
  output_dir = os.path.normpath(output_dir)
  staging_dir = output_dir + INCOMPLETE_SUFFIX
  _recover_replaced(output_dir)
  with _termination_raises():
    files.rmkdir(staging_dir)
    try:
      stats = run_jobs(worker, args, staging_dir)
      if stats.examples == 0:
        raise NoExamplesError(
            f"no examples written: the corpus holds no tokens ({stats.documents} documents; "
            f"blank or whitespace-only lines?). {output_dir} was left unchanged.")
    except BaseException as e:
      files.rmrf(staging_dir)
      if isinstance(e, KeyboardInterrupt):
        print(f"Stopped ({e or 'interrupted'}): workers ended, partial output "
              f"{staging_dir} removed, {output_dir} unchanged.", file=sys.stderr, flush=True)
      raise
  _swap_into_place(staging_dir, output_dir)
  print(stats.summary(output_dir, args.max_seq_length), flush=True)
  return stats


def check_output_dir(output_dir: str, protected: Sequence[str]) -> None:
  """Refuses an output dir whose replacement would delete anything but old shards.

  The original deletes the output dir unconditionally; a mistyped path (the
  corpus, the home directory) would be lost, so only a directory holding
  nothing but `pretrain_data.tfrecord-*` shards is replaced, and never one
  that is or contains an input (`util.paths.check_output_apart`). An output
  inside the corpus dir is fine (the Spanish-ELECTRA recipe's
  `$DATA_DIR/pretrain_tfrecords`): the corpus reader skips it.

  Raises:
    ValueError: `output_dir` is remote, overlaps a protected input, or holds
      other entries.
  """
  if paths.is_remote(output_dir):
    raise ValueError(f"Output directory {output_dir}: only local directories are "
                     "supported (shards are staged and renamed into place).")
  paths.check_output_apart(output_dir, "--output-dir", [(path, "the input") for path in protected],
                           inside=False)
  if os.path.isdir(output_dir):
    if not _only_shards(output_dir):
      others = sorted(name for name in os.listdir(output_dir)
                      if not name.startswith(SHARD_NAME.split("-")[0] + "-"))
      raise ValueError(f"Output directory {output_dir} holds entries that are not "
                       f"pre-training shards (e.g. {others[0]}); it would be deleted and "
                       "re-created, so remove it yourself or choose a new --output-dir.")
  elif os.path.exists(output_dir):
    raise ValueError(f"Output directory {output_dir} exists and is not a directory.")


def check_common_args(args: argparse.Namespace) -> None:
  """Checks --max-seq-length and --num-processes.

  Raises:
    cli.UsageError: a value out of range.
  """
  if args.max_seq_length < MIN_SEQ_LENGTH:
    raise cli.UsageError(f"--max-seq-length must be at least {MIN_SEQ_LENGTH}, got "
                         f"{args.max_seq_length}.")
  if not 1 <= args.num_processes <= NUM_OUT_FILES:
    raise cli.UsageError(f"--num-processes must be in [1, {NUM_OUT_FILES}] (each process owns "
                         f"some of the {NUM_OUT_FILES} shards), got {args.num_processes}.")


def run_build(args: argparse.Namespace, build: Callable[[], None]) -> int:
  """Checks the flags, then runs `build`; returns the exit code (see `util.cli`).

  A bad flag exits with 2. Every check in `build` is about input files and
  folders, so any `ValueError` it raises, and a failed worker, exits with 1.
  """
  code = cli.run(lambda _: check_common_args(args))
  return code or cli.run(lambda _: build(), extra_data_errors=(ValueError, JobsFailedError))


def check_vocab(vocab_file: str) -> None:
  """Loads the vocab once up front so that a bad one fails before anything is deleted."""
  vocab = tokenization.load_vocab(vocab_file)
  tokenization.validate_special_tokens(vocab, REQUIRED_TOKENS, vocab_file)


def check_input_files(directory: str, what: str, skip: Sequence[str] = (),
                      warn: bool = True) -> List[str]:
  """Lists `directory`: the files to read (all but `skip`), each checked to be readable.

  Entries that are not regular files (FIFOs, sockets, devices, also through
  links) are skipped without being opened, with one `warning:` line each on
  stderr if `warn` (a FIFO would block the build for ever, /dev/zero never
  ends).

  Returns:
    The sorted names of the regular files, without `skip`.

  Raises:
    FileNotFoundError: the directory does not exist.
    cli.DataError: it is not a directory, holds no regular file, holds a
      sub-directory or an unreadable file.
  """
  if paths.is_remote(directory):
    if not lazy_tensorflow().io.gfile.isdir(directory):
      raise FileNotFoundError(f"{what} {directory} does not exist or is not a directory.")
    names, skipped = sorted(set(listdir(directory)) - set(skip)), []
  else:
    names, skipped = _local_input_files(directory, what, skip)
  if warn:
    for name, kind in skipped:
      print(f"warning: skipping {os.path.join(directory, name)}: it is {kind}, not a regular "
            "file (never opened).", file=sys.stderr, flush=True)
  if not names and skipped:
    raise cli.DataError(f"{what} {directory} holds no regular file ({len(skipped)} "
                        "skipped: FIFOs, sockets or devices); nothing to build.")
  if not names:
    raise cli.DataError(f"{what} {directory} is empty; nothing to build.")
  return names


def _local_input_files(directory: str, what: str, skip: Sequence[str]
                       ) -> Tuple[List[str], List[Tuple[str, str]]]:
  """The sorted regular files of a local `directory` and the (name, kind) of the others."""
  if not os.path.exists(directory):
    raise FileNotFoundError(f"{what} {directory} does not exist.")
  if not os.path.isdir(directory):
    raise cli.DataError(f"{what} {directory} is not a directory; pass the directory that "
                        "holds the text files.")
  names, skipped = [], []
  for name in sorted(set(os.listdir(directory)) - set(skip)):
    path = os.path.join(directory, name)
    if os.path.isdir(path):
      raise cli.DataError(f"{what} {directory} contains the directory {name}; every entry "
                          "is read as a file (no recursion), so move it out.")
    try:
      kind = special_file_kind(path)
    except OSError:
      kind = None  # A broken link: os.access fails below.
    if kind:
      skipped.append((name, kind))
    elif not os.access(path, os.R_OK):
      raise cli.DataError(f"{path} is not readable (permissions or a broken link); fix or "
                          "remove it.")
    else:
      names.append(name)
  return names, skipped


def own_files_in_corpus(args: argparse.Namespace) -> List[str]:
  """Names in --corpus-dir that are this run's --vocab-file or --output-dir (not corpus text).

  The widely used recipe `--corpus-dir $DATA_DIR --vocab-file $DATA_DIR/vocab.txt
  --output-dir $DATA_DIR/pretrain_tfrecords` keeps all three in one
  directory; the original then read the vocabulary as text (and failed on
  the output directory). Only local paths are compared.
  """
  if paths.is_remote(args.corpus_dir):
    return []
  corpus = os.path.realpath(args.corpus_dir)
  output = os.path.normpath(args.output_dir)
  names = []
  for path in (args.vocab_file, output, output + INCOMPLETE_SUFFIX):
    if not paths.is_remote(path) and os.path.dirname(os.path.realpath(path)) == corpus:
      names.append(os.path.basename(path))
  return names


def corpus_file_names(args: argparse.Namespace, warn: bool = True) -> List[str]:
  """The sorted corpus files to read: --corpus-dir's regular files but `own_files_in_corpus`.

  Args:
    args: the parsed flags.
    warn: print a warning for each skipped FIFO, socket or device (the builder
      does, once; its workers list the directory again quietly).
  """
  return check_input_files(args.corpus_dir, "Corpus directory", own_files_in_corpus(args),
                           warn=warn)


def add_casing_args(parser: argparse.ArgumentParser) -> None:
  """--do/--no-lower-case and --do/--no-strip-accents (defaults: both on, as BERT uncased)."""
  parser.add_argument("--do-lower-case", dest="do_lower_case", action="store_true",
                      help="Lower case input text.")
  parser.add_argument("--no-lower-case", dest="do_lower_case", action="store_false",
                      help="Don't lower case input text.")
  parser.add_argument("--do-strip-accents", dest="strip_accents", action="store_true",
                      help="Strip accents (only when lower-casing).")
  parser.add_argument("--no-strip-accents", dest="strip_accents", action="store_false",
                      help="Don't strip accents.")
  parser.set_defaults(do_lower_case=True, strip_accents=True)


def add_tokenizer_args(parser: argparse.ArgumentParser) -> None:
  """--max-seq-length, --num-processes, casing/accent toggles and --seed."""
  parser.add_argument("--max-seq-length", default=128, type=int,
                      help="Number of tokens per example, [CLS]/[SEP] included.")
  parser.add_argument("--num-processes", default=1, type=int,
                      help="Parallelize across multiple processes.")
  add_casing_args(parser)
  parser.add_argument("--seed", default=None, type=int,
                      help="Seed Python's random for reproducible output: worker j uses "
                           "seed + j. Without it the output differs run to run, as in the "
                           "original.")
  parser.set_defaults(do_lower_case=True, strip_accents=True)


def write_examples(job_id: int, args: argparse.Namespace, shard_dir: str) -> BuildStats:
  """One worker: writes its share of the corpus files into its shards
  (docs/cli.md#build_pretraining_datasetpy)."""
  log = job_logger(job_id)
  rng = job_rng(args.seed, job_id)
  log("Creating example writer")
  example_writer = ExampleWriter(
      job_id=job_id, vocab_file=args.vocab_file, output_dir=shard_dir,
      max_seq_length=args.max_seq_length, num_jobs=args.num_processes,
      blanks_separate_docs=args.blanks_separate_docs, do_lower_case=args.do_lower_case,
      strip_accents=args.strip_accents, rng=rng)
  log("Writing tf examples")
  fnames = job_files(corpus_file_names(args, warn=False), job_id, args.num_processes)
  rng.shuffle(fnames)
  start_time = time.time()
  try:
    for file_no, fname in enumerate(fnames):
      if file_no > 0:
        log(progress_message(file_no, len(fnames), start_time, example_writer.n_written))
      example_writer.write_examples(os.path.join(args.corpus_dir, fname))
  finally:
    example_writer.finish()
  log("Done!")
  return example_writer.stats
