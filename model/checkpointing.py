"""TF1 name-based checkpoints: atomic save (keep N), latest, list, strict/partial restore.

The on-disk format is the one the original's Estimator wrote (see
docs/checkpoints.md#files-in-a-model-directory and docs/cli.md#pre-training-resume):

  <model_dir>/model.ckpt-<step>.index                 TF V2 tensor bundle whose keys
  <model_dir>/model.ckpt-<step>.data-00000-of-00001   are exactly the TF1 variable names
  <model_dir>/checkpoint                              text-proto state file, relative paths

so `tf.train.latest_checkpoint`, `tf.train.list_variables`, the original TF1
code's `Saver` and the Hugging Face ELECTRA converter read what we write, and
we read the released Google checkpoints. Bundles are written with
`tf.raw_ops.SaveV2` from `{name: variable}` dicts (`NamedModule.named_variables()`
plus optimizer slots and `global_step`); no object-graph keys are stored.

Trainer state that is not part of the original's name contract (the tf.data
iterator position, a `tf.random.Generator`) goes to a sidecar object-based
checkpoint `<prefix>.trainer_state.{index,data-00000-of-00001}` next to the
bundle; converters and the original code never look at it.

Atomicity: a save writes the bundle and the sidecar under a hidden temporary
prefix (`.tmp-model.ckpt-<step>-<id>`) in the same directory, fsyncs them,
renames the files into place (index last) and only then atomically replaces the
`checkpoint` state file, which is the commit point. Old checkpoints beyond
`keep_checkpoint_max` are deleted after the commit. A crash at any point leaves
the state file naming a complete checkpoint and never touches the previous one.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import os
import re
import uuid
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import tensorflow as tf

from util import cli, files

_LOGGER = logging.getLogger("electra")

STATE_FILENAME = "checkpoint"
CHECKPOINT_BASENAME = "model.ckpt"
TRAINER_STATE_SUFFIX = ".trainer_state"
DEFAULT_OPTIONAL_PATTERNS = (r"/adam_[mv]$",)

_TMP_PREFIX = ".tmp-"
_DATA_SUFFIX = ".data-00000-of-00001"
_DATA_FILE_RE = re.compile(r"\.data-\d{5}-of-\d{5}$")
_MANAGED_RE = re.compile(re.escape(CHECKPOINT_BASENAME) + r"-(\d+)$")
# The files of a managed checkpoint and its sidecar.
_MANAGED_FILE_RE = re.compile(
    re.escape(CHECKPOINT_BASENAME) + r"-(\d+)(?:" + re.escape(TRAINER_STATE_SUFFIX)
    + r")?\.(?:index|meta|data-\d{5}-of-\d{5})")
_STEP_RE = re.compile(r"-(\d+)$")
_ADAM_SLOT_RE = re.compile(r"/adam_[mv]$")
_OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
_RESTORE_CHUNK_BYTES = 512 * 1024 * 1024
# What TensorFlow raises on a truncated or damaged bundle: DataLossError
# (checksum), OutOfRangeError (short read) and plain OpError (bad index table).
_CORRUPTION_ERRORS = (tf.errors.OpError,)
_TF_NOISE_RE = re.compile(r"\{\{function_node [^}]*\}\}\s*|\s*\[Op:\w+\]")


class CorruptCheckpointError(cli.DataError):
  """A checkpoint's files are truncated or damaged (exit code 1 in the scripts).

  Attributes:
    prefix: the corrupt checkpoint.
  """

  def __init__(self, message: str, prefix: str):
    super().__init__(message)
    self.prefix = prefix


def _corruption(prefix: str, error: Exception) -> CorruptCheckpointError:
  detail = _TF_NOISE_RE.sub("", getattr(error, "message", "") or str(error)).strip()
  detail = detail.splitlines()[0] if detail else type(error).__name__
  return CorruptCheckpointError(
      f"Checkpoint {prefix} is corrupt (truncated or damaged files: {detail}).", prefix)


# ----------------------------------------------------------------------------
# Small file helpers (local paths and tf.io.gfile filesystems such as gs://)
# ----------------------------------------------------------------------------

def _is_local(path: str) -> bool:
  return "://" not in path


def _bundle_exists(prefix: str) -> bool:
  return tf.io.gfile.exists(prefix + ".index")


def _bundle_files(prefix: str) -> List[str]:
  """Existing files of the bundle `prefix` and of its sidecar, the index last."""
  found = []
  for base in (prefix + TRAINER_STATE_SUFFIX, prefix):
    found += sorted(tf.io.gfile.glob(base + ".data-?????-of-?????"))
    found += [f for f in (base + ".meta",) if tf.io.gfile.exists(f)]
  found += [f for f in (prefix + TRAINER_STATE_SUFFIX + ".index", prefix + ".index")
            if tf.io.gfile.exists(f)]
  return found


def _remove_files(paths: Iterable[str]) -> None:
  """Removes files (and directories, recursively); missing ones are skipped."""
  for path in paths:
    with contextlib.suppress(tf.errors.NotFoundError, FileNotFoundError):
      if tf.io.gfile.isdir(path):
        tf.io.gfile.rmtree(path)
      else:
        tf.io.gfile.remove(path)


def _temporaries_of(tmp_prefix: str) -> List[str]:
  """Everything a save under `tmp_prefix` may have left: its bundle files and TF's own
  temporaries (`*.tempstate<n>` files, the sidecar's `<prefix>_temp/` directory)."""
  return tf.io.gfile.glob(tmp_prefix + "*")


def _fsync(paths: Iterable[str]) -> None:
  """Flushes local files (or a directory's entries) to disk; no-op elsewhere."""
  for path in paths:
    if not _is_local(path):
      continue
    fd = os.open(path, os.O_RDONLY)
    try:
      os.fsync(fd)
    finally:
      os.close(fd)


def _write_text_atomically(path: str, text: str) -> None:
  if _is_local(path):
    with files.atomic_write(path) as f:
      f.write(text)
  else:
    tmp = os.path.join(os.path.dirname(path),
                       f"{_TMP_PREFIX}{os.path.basename(path)}-{uuid.uuid4().hex}")
    with tf.io.gfile.GFile(tmp, "w") as f:
      f.write(text)
    tf.io.gfile.rename(tmp, path, overwrite=True)


def _find_prefixes(directory: str) -> List[str]:
  """Checkpoint prefixes in `directory` (by their `.index`), sidecars and temps excluded."""
  prefixes = []
  for index in tf.io.gfile.glob(os.path.join(directory, "*.index")):
    prefix = index[:-len(".index")]
    name = os.path.basename(prefix)
    if not name.startswith(_TMP_PREFIX) and not name.endswith(TRAINER_STATE_SUFFIX):
      prefixes.append(prefix)
  return sorted(prefixes, key=lambda p: (checkpoint_step(p) is None, checkpoint_step(p) or 0, p))


# ----------------------------------------------------------------------------
# The `checkpoint` state file (TF1 CheckpointState text proto)
# ----------------------------------------------------------------------------

@dataclasses.dataclass
class _State:
  """The checkpoints of a model dir, oldest first, and the latest one.

  Attributes:
    latest: the latest checkpoint prefix.
    paths: every listed prefix, oldest first (`latest` last).
    problem: None when read from a valid state file; otherwise why the state
      file could not be used ("missing", "empty", ...), and the list was
      rebuilt from the `model.ckpt-<n>` bundles on disk instead.
  """
  latest: str
  paths: List[str]
  problem: Optional[str] = None


# (model_dir, problem, checkpoints found) already warned about: logged once each.
_WARNED: set = set()


def _parse_state_file(model_dir: str) -> Tuple[Optional[_State], Optional[str]]:
  """(state, None) from a valid `<model_dir>/checkpoint`, else (None, why it is unusable)."""
  state_file = os.path.join(model_dir, STATE_FILENAME)
  if not tf.io.gfile.exists(state_file):
    return None, "missing"
  if tf.io.gfile.isdir(state_file):
    return None, "a directory"
  try:
    if tf.io.gfile.stat(state_file).length == 0:
      return None, "empty"
    proto = tf.train.get_checkpoint_state(model_dir)
  except ValueError as e:  # empty model_checkpoint_path
    return None, f"unusable ({e})"
  except tf.errors.OpError as e:
    return None, f"unreadable ({_TF_NOISE_RE.sub('', e.message).strip()})"
  if proto is None or not proto.model_checkpoint_path:  # TF logged the parse error
    return None, "not a valid checkpoint state file"
  latest = _norm_path(proto.model_checkpoint_path)
  paths = [_norm_path(p) for p in proto.all_model_checkpoint_paths] or [latest]
  if paths[-1] != latest:
    paths = [p for p in paths if p != latest] + [latest]
  return _State(latest, paths), None


def _managed_on_disk(model_dir: str) -> List[str]:
  """The `model.ckpt-<n>` bundles (by their index file) in `model_dir`, oldest first."""
  prefixes = [p for p in _find_prefixes(model_dir) if _is_managed(p, model_dir)]
  return sorted(prefixes, key=checkpoint_step)


def _read_state(model_dir: str) -> Optional[_State]:
  """The checkpoints of `model_dir`: its state file's list, or the bundles on disk.

  The state file is the commit point of every save and is trusted whenever it
  parses. When it is missing, empty or unreadable but `model.ckpt-<n>`
  bundles lie in the directory (the file was deleted or truncated, a copy
  left it out), the list is rebuilt from those bundles (`problem` says why,
  logged once as a WARNING), so that nothing restarts from scratch and
  overwrites them. None when there is neither.
  """
  state, problem = _parse_state_file(model_dir)
  if state is not None:
    return state
  on_disk = _managed_on_disk(model_dir) if tf.io.gfile.isdir(model_dir) else []
  key = (model_dir, problem, len(on_disk))
  first_time = key not in _WARNED
  _WARNED.add(key)
  if not on_disk:
    if problem != "missing" and first_time:
      _LOGGER.warning("Ignoring the checkpoint state file %s: it is %s, and no model.ckpt-<n> "
                      "checkpoints lie next to it.", os.path.join(model_dir, STATE_FILENAME),
                      problem)
    return None
  state = _State(on_disk[-1], on_disk, problem)
  if first_time:
    _LOGGER.warning("WARNING: the checkpoint state file %s is %s, but %d checkpoints lie in "
                    "%s: using them (newest %s).", os.path.join(model_dir, STATE_FILENAME),
                    problem, len(on_disk), model_dir, os.path.basename(on_disk[-1]))
  return state


def rebuild_state_file(model_dir: str) -> Optional[Tuple[str, List[str]]]:
  """Rewrites a missing, empty or unreadable state file from the bundles on disk.

  Called by the trainer (the one writer of a model dir) before it resumes, so
  that the run continues from the newest intact checkpoint instead of starting
  over and saving over the checkpoints that are there.

  Returns:
    (what was wrong with the state file, the prefixes now listed, oldest
    first), or None when the state file was fine or there is nothing to list.
  """
  model_dir = _norm_dir(model_dir)
  state, problem = _parse_state_file(model_dir)
  if state is not None or not tf.io.gfile.isdir(model_dir):
    return None
  on_disk = _managed_on_disk(model_dir)
  if not on_disk:
    return None
  _commit_state(model_dir, on_disk)
  return problem, on_disk


def _norm_path(path: str) -> str:
  return os.path.normpath(path) if _is_local(path) else path


def _quote(text: str) -> str:
  escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
  return '"' + escaped + '"'


def _relative(path: str, model_dir: str) -> str:
  """Path as TF1's `save_relative_paths=True` Saver (the Estimator's) records it."""
  if os.path.dirname(path) == model_dir:
    return os.path.basename(path)
  if _is_local(path):
    return os.path.relpath(os.path.abspath(path), os.path.abspath(model_dir))
  return path


def _norm_dir(model_dir) -> str:
  """`model_dir` without trailing slashes or `./` parts, so prefixes compare equal."""
  model_dir = os.fspath(model_dir)
  return os.path.normpath(model_dir) if _is_local(model_dir) else model_dir.rstrip("/")


def _format_state(model_dir: str, paths: Sequence[str]) -> str:
  """The text proto TF1's Saver writes: latest, then all kept paths oldest first."""
  rel = [_relative(p, model_dir) for p in paths]
  lines = [f"model_checkpoint_path: {_quote(rel[-1])}"]
  lines += [f"all_model_checkpoint_paths: {_quote(p)}" for p in rel]
  return "\n".join(lines) + "\n"


def _commit_state(model_dir: str, paths: Sequence[str]) -> None:
  """Atomically replaces the state file (removes it when `paths` is empty)."""
  state_file = os.path.join(model_dir, STATE_FILENAME)
  if not paths:
    _remove_files([state_file])
    return
  _write_text_atomically(state_file, _format_state(model_dir, paths))


# ----------------------------------------------------------------------------
# Save
# ----------------------------------------------------------------------------

def _as_step(step) -> int:
  value = int(step.numpy()) if hasattr(step, "numpy") else int(step)
  if value < 0:
    raise ValueError(f"Checkpoint step must be >= 0, got {value}.")
  return value


def _check_variables(variables: Dict[str, tf.Variable]) -> None:
  if not variables:
    raise ValueError("No variables to save: pass {checkpoint name: tf.Variable}, e.g. "
                     "model.named_variables() plus optimizer slots and global_step.")
  for name, variable in variables.items():
    if not isinstance(name, str) or not name or name.startswith("/") or name.endswith("/"):
      raise ValueError(f"Invalid checkpoint variable name {name!r}: use the TF1 name, "
                       "e.g. 'electra/encoder/layer_0/output/dense/kernel'.")
    if not isinstance(variable, tf.Variable):
      raise ValueError(f"Value for checkpoint name {name!r} is a {type(variable).__name__}, "
                       "not a tf.Variable.")


def _write_bundle(prefix: str, variables: Dict[str, tf.Variable]) -> None:
  """One SaveV2 call writing `<prefix>.index` and `<prefix>.data-00000-of-00001`."""
  names = sorted(variables)
  with tf.device("/cpu:0"):
    # read_value() gives the primary copy of a MirroredVariable (cross-replica context).
    tensors = [variables[name].read_value() for name in names]
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names,
                      shape_and_slices=[""] * len(names), tensors=tensors)


def _write_extra_state(prefix: str, extra_state: Dict[str, object]) -> None:
  tf.train.Checkpoint(**extra_state).write(prefix + TRAINER_STATE_SUFFIX)


def _move_into_place(tmp_prefix: str, prefix: str, moved: List[str]) -> None:
  """Renames the temp bundle (and sidecar) files to `prefix`, index files last.

  Appends each destination to `moved` as it goes, so a failure can undo them.
  """
  for src in _bundle_files(tmp_prefix):
    dst = prefix + src[len(tmp_prefix):]
    tf.io.gfile.rename(src, dst, overwrite=True)
    moved.append(dst)


def _delete_checkpoint(prefix: str) -> None:
  """Deletes a bundle and its sidecar, index files first (it stops existing at once)."""
  _remove_files(reversed(_bundle_files(prefix)))


def _remove_stale_temporaries(model_dir: str) -> None:
  """Deletes leftovers of saves that crashed (one writer per model_dir is assumed)."""
  patterns = [_TMP_PREFIX + CHECKPOINT_BASENAME + "-*", _TMP_PREFIX + STATE_FILENAME + "-*"]
  for pattern in patterns:
    stale = tf.io.gfile.glob(os.path.join(model_dir, pattern))
    if stale:
      _LOGGER.info("Removing %d files left by an interrupted checkpoint save in %s",
                   len(stale), model_dir)
      _remove_files(stale)


def _is_managed(path: str, model_dir: str) -> bool:
  """True for `model.ckpt-<n>` in model_dir: the only checkpoints keep-N may delete."""
  return (os.path.dirname(path) == model_dir
          and _MANAGED_RE.fullmatch(os.path.basename(path)) is not None)


def save_checkpoint(model_dir: str, step, variables: Dict[str, tf.Variable],
                    keep_checkpoint_max: Optional[int] = 5,
                    extra_state: Optional[Dict[str, object]] = None) -> str:
  """Atomically writes `<model_dir>/model.ckpt-<step>` and makes it the latest.

  Args:
    model_dir: str. Directory of the run (created if needed).
    step: int or scalar integer tensor/variable. The global step.
    variables: {TF1 checkpoint name: tf.Variable}, e.g. model and optimizer
      slot variables plus `global_step`. Stored under exactly these keys with
      the variables' dtypes and shapes. Distributed (mirrored) variables are
      saved from their primary copy.
    keep_checkpoint_max: int or None. Keep this many most recent checkpoints
      listed in the state file and delete the files of older ones; 0 or None
      keeps all (the original's `keep_checkpoint_max`). Only `model.ckpt-<n>`
      checkpoints in `model_dir` are ever deleted.
    extra_state: optional {key: trackable} (a tf.data iterator, a
      `tf.random.Generator`, ...) written with `tf.train.Checkpoint` to the
      sidecar `<prefix>.trainer_state`; read it back with `restore_extra_state`.

  Returns:
    The checkpoint prefix `<model_dir>/model.ckpt-<step>`.

  Raises:
    ValueError: empty/invalid `variables`, negative step or keep count, or not
      called eagerly.
  """
  if not tf.executing_eagerly():
    raise ValueError("save_checkpoint must be called eagerly, not inside a tf.function.")
  _check_variables(variables)
  step = _as_step(step)
  if keep_checkpoint_max is not None and keep_checkpoint_max < 0:
    raise ValueError(f"keep_checkpoint_max must be >= 0 or None, got {keep_checkpoint_max}.")
  model_dir = _norm_dir(model_dir)
  tf.io.gfile.makedirs(model_dir)
  _remove_stale_temporaries(model_dir)
  prefix = os.path.join(model_dir, f"{CHECKPOINT_BASENAME}-{step}")
  tmp_prefix = os.path.join(
      model_dir, f"{_TMP_PREFIX}{CHECKPOINT_BASENAME}-{step}-{uuid.uuid4().hex[:12]}")
  moved: List[str] = []
  try:
    _write_bundle(tmp_prefix, variables)
    if extra_state:
      _write_extra_state(tmp_prefix, extra_state)
    _fsync(_bundle_files(tmp_prefix))
    paths = _previous_checkpoints(model_dir, prefix)
    if _bundle_exists(prefix) or _bundle_files(prefix):
      # Re-saving a step: stop naming it before its files are replaced (a crash
      # in between then leaves the state file on an older, intact checkpoint).
      _commit_state(model_dir, paths)
      _delete_checkpoint(prefix)
    _move_into_place(tmp_prefix, prefix, moved)
    _fsync([model_dir])
    paths, dropped = _apply_keep(model_dir, paths + [prefix], keep_checkpoint_max)
    _commit_state(model_dir, paths)
  except (Exception, KeyboardInterrupt) as e:  # A hard crash skips this; the next save cleans up.
    # Also on disk full or Ctrl-C: TF's partly written `.tempstate` files and
    # `_temp/` directories go too, not only complete bundle files.
    _remove_files(_temporaries_of(tmp_prefix) + moved[::-1])
    reason = _out_of_space_reason(e)
    if reason is None:
      raise
    raise CheckpointSaveError(_save_failure_message(model_dir, step, reason)) from e
  for old in dropped:
    _LOGGER.debug("Deleting old checkpoint %s (keep_checkpoint_max=%s)", old, keep_checkpoint_max)
    _delete_checkpoint(old)
  if keep_checkpoint_max:
    _delete_unlisted_older(model_dir, paths)
  return prefix


class CheckpointSaveError(cli.DataError):
  """A save failed for lack of space; the previous checkpoint is intact (exit code 1)."""


# errno values (and TensorFlow's texts for them) that mean "the disk is full".
_OUT_OF_SPACE = {errno.ENOSPC: "no space left", errno.EDQUOT: "the disk quota is exceeded",
                 errno.EFBIG: "a file size limit (ulimit -f) was reached"}


def _out_of_space_reason(error: BaseException) -> Optional[str]:
  """"no space left" etc. when `error` is a full disk or quota, else None."""
  if isinstance(error, OSError) and error.errno in _OUT_OF_SPACE:
    return _OUT_OF_SPACE[error.errno]
  if isinstance(error, tf.errors.OpError):
    for code, reason in _OUT_OF_SPACE.items():
      if os.strerror(code) in (error.message or ""):
        return reason
  return None


def _save_failure_message(model_dir: str, step: int, reason: str) -> str:
  state = _read_state(model_dir)
  previous = [p for p in (state.paths if state else []) if _bundle_exists(p)]
  if previous:
    step_text = ("" if checkpoint_step(previous[-1]) is None
                 else f", step {checkpoint_step(previous[-1])}")
    intact = f"the previous checkpoint ({os.path.basename(previous[-1])}{step_text}) is intact"
  else:
    intact = "no earlier checkpoint was saved"
  return (f"{reason[0].upper()}{reason[1:]} on {model_dir} while saving step {step}; "
          f"{intact} and the partial files were removed. Free some space (or lower "
          "keep_checkpoint_max) and re-run to resume.")


def _delete_unlisted_older(model_dir: str, kept: Sequence[str]) -> None:
  """Deletes `model.ckpt-<n>` files older than every kept checkpoint that the state
  file no longer lists: what a prune interrupted by a crash (kill -9) left behind.

  Pruning is thereby idempotent. Only this code's `model.ckpt-<n>` names are
  touched (never a released `electra_small` or another basename), only steps
  below the oldest kept `model.ckpt-<n>`, and only while pruning is on
  (`keep_checkpoint_max` > 0). Index files go first, like `_delete_checkpoint`.
  """
  kept_steps = [checkpoint_step(p) for p in kept if _is_managed(p, model_dir)]
  if not kept_steps:
    return
  oldest_kept = min(kept_steps)
  kept_set = set(kept)
  stale: Dict[str, List[str]] = {}
  for path in tf.io.gfile.glob(os.path.join(model_dir, CHECKPOINT_BASENAME + "-*")):
    match = _MANAGED_FILE_RE.fullmatch(os.path.basename(path))
    if match is None or int(match.group(1)) >= oldest_kept:
      continue
    prefix = os.path.join(model_dir, f"{CHECKPOINT_BASENAME}-{match.group(1)}")
    if prefix not in kept_set:
      stale.setdefault(prefix, []).append(path)
  for prefix, stale_files in sorted(stale.items()):
    _LOGGER.info("Deleting %s: pruned earlier (keep_checkpoint_max) but left on disk by an "
                 "interrupted run", prefix)
    _remove_files(sorted(stale_files, key=lambda f: not f.endswith(".index")))


def _previous_checkpoints(model_dir: str, new_prefix: str) -> List[str]:
  """Checkpoints listed in the state file that still exist (oldest first), minus `new_prefix`.

  Like TF1's `Saver.recover_last_checkpoints`, which the Estimator applies on restore.
  """
  state = _read_state(model_dir)
  paths: List[str] = []
  for path in state.paths if state else []:
    if path != new_prefix and path not in paths and _bundle_exists(path):
      paths.append(path)
  return paths


def _apply_keep(model_dir: str, paths: List[str],
                keep_checkpoint_max: Optional[int]) -> Tuple[List[str], List[str]]:
  """Splits off the oldest managed checkpoints beyond `keep_checkpoint_max`.

  Foreign checkpoints (e.g. a released `electra_small` in a continued
  pre-training dir) leave the list like TF1's but their files are kept.
  """
  if not keep_checkpoint_max or len(paths) <= keep_checkpoint_max:
    return paths, []
  n_drop = len(paths) - keep_checkpoint_max
  dropped = [p for p in paths[:n_drop] if _is_managed(p, model_dir)]
  return paths[n_drop:], dropped


# ----------------------------------------------------------------------------
# Find and list
# ----------------------------------------------------------------------------

def checkpoint_step(prefix: str) -> Optional[int]:
  """The step in a `...-<step>` prefix (`model.ckpt-1000` -> 1000); None otherwise.

  Released checkpoints (`electra_small`) have no step in their name; their
  `global_step` variable holds it.
  """
  match = _STEP_RE.search(os.path.basename(os.fspath(prefix)))
  return int(match.group(1)) if match else None


def latest_checkpoint(model_dir: str) -> Optional[str]:
  """The prefix named by `<model_dir>/checkpoint`, like `tf.train.latest_checkpoint`.

  If that checkpoint's files are gone, falls back (with a warning) to the same
  name inside `model_dir` (a state file copied from another machine with
  absolute paths) and then to the newest other listed checkpoint that exists.

  Args:
    model_dir: str. Directory holding the state file.

  Returns:
    The checkpoint prefix, or None if there is no usable state file.
  """
  model_dir = _norm_dir(model_dir)
  state = _read_state(model_dir)
  if state is None:
    return None
  candidates = [state.latest, os.path.join(model_dir, os.path.basename(state.latest))]
  candidates += [p for p in reversed(state.paths) if p != state.latest]
  for candidate in candidates:
    if _bundle_exists(candidate):
      if candidate != state.latest:
        _LOGGER.warning("Checkpoint %s named in %s has no files; using %s instead.",
                        state.latest, os.path.join(model_dir, STATE_FILENAME), candidate)
      return candidate
  _LOGGER.warning("None of the checkpoints listed in %s exist.",
                  os.path.join(model_dir, STATE_FILENAME))
  return None


def _strip_file_suffix(path: str) -> str:
  """`x.index`, `x.meta`, `x.data-00000-of-00001` -> `x` (users often pass a file)."""
  for suffix in (".index", ".meta"):
    if path.endswith(suffix):
      return path[:-len(suffix)]
  return _DATA_FILE_RE.sub("", path)


def resolve_checkpoint(path: str) -> str:
  """A directory (-> its latest checkpoint) or a checkpoint prefix -> a prefix.

  Args:
    path: str. A model directory with a `checkpoint` state file (as the
      original's `init_checkpoint` default,
      docs/checkpoints.md#partial-restore-with-init_checkpoint), a checkpoint prefix
      (`.../model.ckpt-1000`, `.../electra_small`), or one of its files.

  Returns:
    The checkpoint prefix.

  Raises:
    FileNotFoundError: nothing loadable at `path`; the message lists the
      checkpoints that were found nearby.
  """
  path = os.fspath(path)
  if tf.io.gfile.isdir(path):
    latest = latest_checkpoint(path)
    if latest:
      return latest
    found = _find_prefixes(path)
    has_state = tf.io.gfile.exists(os.path.join(path, STATE_FILENAME))
    reason = ("its `checkpoint` state file names no existing checkpoint" if has_state
              else "it has no `checkpoint` state file")
    hint = (f"found checkpoint prefixes: {', '.join(found)}; pass one of them instead"
            if found else "it contains no checkpoint (*.index) files")
    raise FileNotFoundError(f"No checkpoint in directory {path}: {reason}, and {hint}.")
  prefix = _strip_file_suffix(path)
  if _bundle_exists(prefix):
    return prefix
  parent = os.path.dirname(prefix) or "."
  found = _find_prefixes(parent) if tf.io.gfile.isdir(parent) else []
  hint = (f"checkpoints in {parent}: {', '.join(found)}" if found
          else f"no checkpoints in {parent}")
  raise FileNotFoundError(
      f"No checkpoint at {path}: it is not a directory and {prefix}.index does not "
      f"exist ({hint}).")


def list_checkpoint(path: str) -> Dict[str, List[int]]:
  """{variable name: shape} of a checkpoint (dir or prefix), sorted by name.

  Raises:
    FileNotFoundError: see `resolve_checkpoint`.
  """
  prefix = resolve_checkpoint(path)
  try:
    listed = tf.train.list_variables(prefix)
  except _CORRUPTION_ERRORS as e:
    raise _corruption(prefix, e) from e
  return {name: list(shape) for name, shape in listed if name != _OBJECT_GRAPH_KEY}


def listed_checkpoints(model_dir: str) -> List[str]:
  """The existing checkpoints the state file of `model_dir` lists, newest first."""
  model_dir = _norm_dir(model_dir)
  latest = latest_checkpoint(model_dir)
  if latest is None:
    return []
  state = _read_state(model_dir)
  older = [p for p in reversed(state.paths) if p != latest and _bundle_exists(p)]
  return [latest] + older


def is_intact(prefix: str) -> bool:
  """Whether every tensor of the checkpoint reads back (index and checksums intact)."""
  try:
    reader = tf.train.load_checkpoint(prefix)
    for name in reader.get_variable_to_shape_map():
      reader.get_tensor(name)
  except _CORRUPTION_ERRORS:
    return False
  return True


def previous_intact_checkpoint(prefix: str) -> Optional[str]:
  """The newest intact checkpoint listed next to `prefix` that is older than it, or None."""
  directory = os.path.dirname(prefix)
  step = checkpoint_step(prefix)
  for candidate in listed_checkpoints(directory):
    candidate_step = checkpoint_step(candidate)
    if (candidate != prefix and (step is None or candidate_step is None or candidate_step < step)
        and is_intact(candidate)):
      return candidate
  return None


def restore_latest_intact(model_dir: str,
                          restore: Callable[[str], RestoreReport]) -> Optional[RestoreReport]:
  """Resumes from the newest intact checkpoint of `model_dir`, skipping corrupt ones.

  The fall-back policy (resume only; an explicitly named checkpoint such as
  `init_checkpoint` is never swapped for another, see `corrupt_checkpoint_advice`):
  a latest checkpoint whose files are truncated or damaged (a disk failure, a
  copy cut short) is skipped with a WARNING that names it and the checkpoint
  used instead; its files are left on disk and are replaced when training
  reaches its step again. Without any intact checkpoint this raises.

  Args:
    model_dir: the run's directory.
    restore: prefix -> RestoreReport, e.g. a strict `restore_checkpoint` call.

  Returns:
    The report of the checkpoint restored, or None if `model_dir` has none.

  Raises:
    CorruptCheckpointError: every listed checkpoint is corrupt.
  """
  candidates = listed_checkpoints(model_dir)
  corrupt: List[CorruptCheckpointError] = []
  for prefix in candidates:
    try:
      report = restore(prefix)
    except CorruptCheckpointError as e:
      corrupt.append(e)
      continue
    for error in corrupt:
      _LOGGER.warning("WARNING: %s Resuming from the previous intact checkpoint %s instead; "
                      "the damaged files are left in place.", error, prefix)
    return report
  if corrupt:
    raise CorruptCheckpointError(
        f"{corrupt[0]} No intact older checkpoint is listed in "
        f"{os.path.join(_norm_dir(model_dir), STATE_FILENAME)}: move the damaged files away "
        "(or use another --model-name) to train from scratch.", corrupt[0].prefix)
  return None


def corrupt_checkpoint_advice(error: CorruptCheckpointError, hparam: str) -> str:
  """`error`'s message plus the exact `hparam` value that loads the previous intact one."""
  previous = previous_intact_checkpoint(error.prefix)
  if previous is None:
    return f"{error} No older intact checkpoint is listed next to it."
  return (f"{error} To start from the previous intact checkpoint instead, set "
          f"\"{hparam}\": \"{previous}\".")


# ----------------------------------------------------------------------------
# Restore
# ----------------------------------------------------------------------------

@dataclasses.dataclass
class RestoreReport:
  """What `restore_checkpoint` did.

  Attributes:
    path: the checkpoint prefix read.
    partial: whether it was a partial (init_checkpoint) load.
    restored: names assigned from the checkpoint.
    missing: model variables absent from the checkpoint (kept as initialised).
    missing_optional: the subset of `missing` matching the optional patterns.
    not_trainable: partial mode only: non-trainable model variables (optimizer
      slots, global_step) that are never loaded, like the original.
    unexpected: checkpoint variables the model does not have (ignored).
    shape_mismatched: (name, checkpoint shape, model shape).
    dtype_mismatched: (name, checkpoint dtype, model dtype) that cannot be cast.
  """
  path: str
  partial: bool
  restored: List[str] = dataclasses.field(default_factory=list)
  missing: List[str] = dataclasses.field(default_factory=list)
  missing_optional: List[str] = dataclasses.field(default_factory=list)
  not_trainable: List[str] = dataclasses.field(default_factory=list)
  unexpected: List[str] = dataclasses.field(default_factory=list)
  shape_mismatched: List[Tuple[str, List[int], List[int]]] = dataclasses.field(
      default_factory=list)
  dtype_mismatched: List[Tuple[str, str, str]] = dataclasses.field(default_factory=list)

  def summary(self) -> str:
    """Multi-line human summary: counts, then grouped names of what was skipped."""
    mode = "partial (init_checkpoint)" if self.partial else "strict (resume)"
    lines = [f"Restored {len(self.restored)} variables from {self.path} [{mode}]"]
    if self.missing:
      lines.append(f"  not in the checkpoint, kept as initialised ({len(self.missing)}): "
                   f"{_summarize_names(self.missing)}")
    if self.not_trainable:
      lines.append(f"  not trainable, not loaded ({len(self.not_trainable)}): "
                   f"{_summarize_names(self.not_trainable)}")
    if self.unexpected:
      lines.append(f"  in the checkpoint but not in the model, ignored ({len(self.unexpected)}): "
                   f"{_summarize_names(self.unexpected)}")
    for name, ckpt_shape, var_shape in self.shape_mismatched:
      lines.append(f"  shape mismatch: {name}: checkpoint {ckpt_shape} vs model {var_shape}")
    for name, ckpt_dtype, var_dtype in self.dtype_mismatched:
      lines.append(f"  dtype mismatch: {name}: checkpoint {ckpt_dtype} vs model {var_dtype}")
    return "\n".join(lines)

  def variable_lines(self, variables: Dict[str, tf.Variable]) -> List[str]:
    """BERT-style per-variable lines: `name = ..., shape = ...[, *INIT_FROM_CKPT*]`."""
    restored = set(self.restored)
    return [f"  name = {name}, shape = {list(variables[name].shape)}"
            + (", *INIT_FROM_CKPT*" if name in restored else "")
            for name in sorted(variables)]


def _group_key(name: str) -> str:
  if _ADAM_SLOT_RE.search(name):
    return "*/" + name.rsplit("/", 1)[1]
  return name.split("/", 1)[0] + ("/*" if "/" in name else "")


def _summarize_names(names: Sequence[str], limit: int = 8) -> str:
  """All names if few, else counts per top-level scope (`generator/* (394)`)."""
  if len(names) <= limit:
    return ", ".join(sorted(names))
  counts: Dict[str, int] = {}
  for name in names:
    key = _group_key(name)
    counts[key] = counts.get(key, 0) + 1
  return ", ".join(f"{key} ({n})" if "*" in key else key for key, n in sorted(counts.items()))


def _dtypes_compatible(ckpt_dtype: tf.DType, var_dtype: tf.DType) -> bool:
  """Same dtype, or both floating / both integer (cast on restore)."""
  if ckpt_dtype == var_dtype:
    return True
  return ((ckpt_dtype.is_floating and var_dtype.is_floating)
          or (ckpt_dtype.is_integer and var_dtype.is_integer))


def _classify(prefix: str, variables: Dict[str, tf.Variable], partial: bool,
              optional_patterns: Sequence[str]) -> Tuple[RestoreReport, Dict[str, tf.DType]]:
  """Matches model variables against the checkpoint; returns the report and ckpt dtypes."""
  reader = tf.train.load_checkpoint(prefix)
  shapes = {k: list(v) for k, v in reader.get_variable_to_shape_map().items()
            if k != _OBJECT_GRAPH_KEY}
  dtypes = reader.get_variable_to_dtype_map()
  optional = [re.compile(p) for p in optional_patterns]
  report = RestoreReport(path=prefix, partial=partial)
  report.unexpected = sorted(set(shapes) - set(variables))
  for name in sorted(variables):
    variable = variables[name]
    if partial and not variable.trainable:
      report.not_trainable.append(name)
    elif name not in shapes:
      report.missing.append(name)
      if any(p.search(name) for p in optional):
        report.missing_optional.append(name)
    elif shapes[name] != list(variable.shape):
      report.shape_mismatched.append((name, shapes[name], list(variable.shape)))
    elif not _dtypes_compatible(dtypes[name], variable.dtype):
      report.dtype_mismatched.append((name, dtypes[name].name, variable.dtype.name))
    else:
      report.restored.append(name)
  return report, dtypes


def _error_message(report: RestoreReport, variables: Dict[str, tf.Variable],
                   has_object_graph: bool) -> str:
  required = [n for n in report.missing if n not in set(report.missing_optional)]
  lines = [f"Cannot restore checkpoint {report.path}:"]
  if required and not report.partial:
    lines.append(f"  {len(required)} model variables are missing from the checkpoint:")
    lines += [f"    {n} {list(variables[n].shape)}" for n in required]
  for name, ckpt_shape, var_shape in report.shape_mismatched:
    lines.append(f"  shape mismatch: {name}: checkpoint {ckpt_shape} vs model {var_shape}")
  for name, ckpt_dtype, var_dtype in report.dtype_mismatched:
    lines.append(f"  dtype mismatch: {name}: checkpoint {ckpt_dtype} vs model {var_dtype}")
  if report.partial and not report.restored:
    lines.append("  No trainable model variable has a name found in the checkpoint.")
  if report.unexpected and (required or not report.restored):
    lines.append(f"  checkpoint variables not in the model ({len(report.unexpected)}): "
                 f"{_summarize_names(report.unexpected)}")
  if has_object_graph and not report.restored:
    lines.append("  This looks like a TF2 object-based checkpoint (tf.train.Checkpoint); "
                 "only TF1 name-based checkpoints (variable names as keys) can be loaded.")
  if report.partial and not report.restored:
    lines.append("  Point init_checkpoint at a pre-trained ELECTRA model of this code base or "
                 "the original (TF1 names), or set it to null to train from scratch.")
  elif report.partial:
    lines.append("  A variable of the same name but another shape is an error, as in the "
                 "original: init_checkpoint holds a model of another size (e.g. wrong --hparams "
                 "model_size or embedding_size for this pre-trained model); point "
                 "init_checkpoint at a matching model, or set it to null to train from scratch.")
  else:
    lines.append("  The model's hparams probably differ from the run that wrote the checkpoint "
                 "(e.g. wrong --hparams model_size, embedding_size or generator_hidden_size, "
                 "or untied_generator_embeddings); fix them to match the checkpoint. To load "
                 "only the variables that match (e.g. a pre-trained encoder into a new model) "
                 "use init_checkpoint (partial restore) instead of resuming from model_dir.")
  return "\n".join(lines)


def _restore_values(prefix: str, names: Sequence[str], variables: Dict[str, tf.Variable],
                    dtypes: Dict[str, tf.DType]) -> None:
  """RestoreV2 in as few calls as memory allows (one for models under 512 MiB)."""
  chunk: List[str] = []
  size = 0
  for name in names:
    chunk.append(name)
    size += variables[name].shape.num_elements() * dtypes[name].size
    if size >= _RESTORE_CHUNK_BYTES:
      _restore_chunk(prefix, chunk, variables, dtypes)
      chunk, size = [], 0
  if chunk:
    _restore_chunk(prefix, chunk, variables, dtypes)


def _restore_chunk(prefix: str, names: Sequence[str], variables: Dict[str, tf.Variable],
                   dtypes: Dict[str, tf.DType]) -> None:
  with tf.device("/cpu:0"):
    values = tf.raw_ops.RestoreV2(prefix=prefix, tensor_names=list(names),
                                  shape_and_slices=[""] * len(names),
                                  dtypes=[dtypes[n] for n in names])
  for name, value in zip(names, values):
    variable = variables[name]
    if value.dtype != variable.dtype:
      value = tf.cast(value, variable.dtype)
    variable.assign(value, read_value=False)


def _log_restore(report: RestoreReport, logger: logging.Logger, ckpt_names: Iterable[str]) -> None:
  logger.info("%s", report.summary())
  if report.missing_optional:
    slots = [n for n in report.missing_optional if _ADAM_SLOT_RE.search(n)]
    has_any_slot = any(_ADAM_SLOT_RE.search(n) for n in ckpt_names)
    if len(slots) == len(report.missing_optional) and not has_any_slot:
      logger.warning("Checkpoint %s has no Adam slots (e.g. a released checkpoint): "
                     "%d optimizer slots start at zero.", report.path, len(slots))
    else:
      logger.warning("Checkpoint %s lacks %d optional variables, which keep their initial "
                     "values: %s", report.path, len(report.missing_optional),
                     _summarize_names(report.missing_optional))


def restore_checkpoint(path: str, variables: Dict[str, tf.Variable], partial: bool = False,
                       optional_patterns: Sequence[str] = DEFAULT_OPTIONAL_PATTERNS,
                       logger: logging.Logger = _LOGGER) -> RestoreReport:
  """Assigns checkpoint values to `variables` by TF1 name.

  Strict mode (resume, docs/cli.md#run_pretrainingpy): every model variable must be in the
  checkpoint with the same shape, except those matching `optional_patterns`
  (by default Adam slots, which the released checkpoints lack,
  docs/checkpoints.md#released-google-checkpoints): those keep their current values (zeros for fresh
  slots) and one warning line says so. Extra checkpoint entries are ignored, like the original.

  Partial mode (`init_checkpoint`, docs/checkpoints.md#partial-restore-with-init_checkpoint): every
  trainable model variable whose name is in the checkpoint is loaded; non-trainable ones (slots,
  global_step) and names absent from the checkpoint keep their initial values;
  a shape mismatch on a shared name is still an error, and so is a checkpoint
  sharing no name with the trainable variables. The summary of what was
  restored and skipped is logged at INFO (never a silent partial load), and the
  per-variable `*INIT_FROM_CKPT*` lines at DEBUG.

  Nothing is assigned unless validation passes. Values are read with one
  RestoreV2 call per 512 MiB and cast when the checkpoint's dtype differs
  within the same kind (e.g. int64 <-> int32, float32 -> bfloat16).

  Args:
    path: str. Checkpoint prefix or directory (see `resolve_checkpoint`).
    variables: {TF1 checkpoint name: tf.Variable} (mirrored variables are
      assigned on every replica).
    partial: bool. init_checkpoint semantics instead of strict resume.
    optional_patterns: regexes (searched) of names that may be absent in strict mode.
    logger: where to log.

  Returns:
    A `RestoreReport`.

  Raises:
    FileNotFoundError: no checkpoint at `path`.
    CorruptCheckpointError: its files are truncated or damaged (nothing is
      assigned if the index is; some variables may be if a data file is).
    ValueError: strict mode with missing non-optional variables, partial mode
      with no name in common, any shape or incompatible dtype mismatch, or not
      called eagerly; the message lists
      every offending name with its shapes and how to fix it.
  """
  if not tf.executing_eagerly():
    raise ValueError("restore_checkpoint must be called eagerly, not inside a tf.function.")
  prefix = resolve_checkpoint(path)
  try:
    report, dtypes = _classify(prefix, variables, partial, optional_patterns)
  except _CORRUPTION_ERRORS as e:
    raise _corruption(prefix, e) from e
  required_missing = len(report.missing) - len(report.missing_optional)
  nothing_matched = partial and not report.restored and len(report.not_trainable) < len(variables)
  if (report.shape_mismatched or report.dtype_mismatched or nothing_matched
      or (required_missing and not partial)):
    raise ValueError(_error_message(report, variables, _OBJECT_GRAPH_KEY in dtypes))
  try:
    _restore_values(prefix, report.restored, variables, dtypes)
  except _CORRUPTION_ERRORS as e:
    raise _corruption(prefix, e) from e
  _log_restore(report, logger, dtypes)
  for line in report.variable_lines(variables):
    logger.debug("%s", line)
  return report


# ----------------------------------------------------------------------------
# Trainer-side sidecar state
# ----------------------------------------------------------------------------

def restore_extra_state(prefix: str, extra_state: Dict[str, object]) -> bool:
  """Restores the objects saved with `save_checkpoint(..., extra_state=...)`.

  Args:
    prefix: str. Checkpoint prefix (or directory, resolved to its latest).
    extra_state: {key: trackable} with the same keys used when saving; the
      objects are restored in place (e.g. a fresh iterator over the same
      dataset continues where the saved one stopped).

  Returns:
    True if restored; False when the checkpoint has no sidecar (a released or
    TF1-written checkpoint), in which case nothing is touched.

  Raises:
    FileNotFoundError: no checkpoint at `prefix`.
    ValueError: a key is absent from the sidecar or an object does not match
      what was saved (e.g. a different input pipeline).
  """
  prefix = resolve_checkpoint(prefix)
  sidecar = prefix + TRAINER_STATE_SUFFIX
  if not _bundle_exists(sidecar):
    return False
  saved = {name.split("/", 1)[0] for name, _ in tf.train.list_variables(sidecar)}
  absent = sorted(set(extra_state) - saved)
  if absent:
    raise ValueError(f"Trainer state {sidecar} has no {absent} (it holds "
                     f"{sorted(saved - {_OBJECT_GRAPH_KEY})}): it was written by a run with a "
                     "different trainer setup (e.g. another mixed_precision). Resume with the "
                     f"same settings, or delete {sidecar}.* to resume without the exact data "
                     "position and run state.")
  try:
    status = tf.train.Checkpoint(**extra_state).read(sidecar)
    status.expect_partial()
    status.assert_existing_objects_matched()
  except (AssertionError, tf.errors.OpError) as e:
    raise ValueError(f"Cannot restore trainer state from {sidecar}: {e}. The input pipeline "
                     "or random generator differs from the run that wrote it; restore the "
                     "same setup, or delete the .trainer_state files to resume without "
                     "exact data position.") from e
  return True
