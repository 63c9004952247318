"""The hparams mechanism shared by `PretrainingConfig` and `FinetuningConfig`.

A config is a plain object whose public attributes are the hparams (see
docs/hparams.md#merge-order). Subclasses assign every default in their constructor, call
`_freeze_hparams()` to record which names may be overridden (and with which
JSON types), then apply `update(overrides)`, their presets, and `update`
again, so explicitly passed values always win.

Beyond the original, `update` checks names and types: an unknown name raises
`ValueError("Unknown hparam <key> ...")` listing the closest valid names, and
a value whose JSON type does not fit the hparam raises a `ValueError` naming
the hparam, the expected and the actual type. Private attributes (leading
underscore) are bookkeeping, never hparams.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import logging
import numbers
import os
from typing import Any, Callable, ClassVar, Dict, List, Mapping, Optional, Sequence, Tuple

from util import cli, files, paths

logger = logging.getLogger("electra")

Validator = Callable[[str, Any], None]

MIXED_PRECISION_CHOICES = ("off", "bf16", "fp16")
DISTRIBUTION_STRATEGY_CHOICES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")
MODEL_SIZE_CHOICES = ("small", "base", "large")


# ----------------------------------------------------------------------------
# --hparams parsing (see docs/cli.md#run_pretrainingpy flags, docs/hparams.md#merge-order)
# ----------------------------------------------------------------------------

class HparamsFileError(cli.UsageError, FileNotFoundError):
  """A `--hparams` path that does not exist: a flag mistake (exit 2), still a FileNotFoundError."""


def _read_text(path: str) -> str:
  """Reads a local file, or a remote one (`gs://...`) through the TF file API.

  Raises:
    HparamsFileError: no such file.
    cli.UsageError: a directory, FIFO or other non-regular file (never opened).
  """
  if "://" in path:
    import tensorflow as tf  # Lazy: configs stay importable without loading TF.
    if not tf.io.gfile.exists(path):
      raise HparamsFileError(_missing_file_message(path))
    if tf.io.gfile.isdir(path):
      raise cli.UsageError(f"--hparams file {path} is a directory; pass a .json file.")
    with tf.io.gfile.GFile(path, "r") as f:
      return f.read()
  problem = paths.file_problem(path)
  if problem == paths.MISSING:
    raise HparamsFileError(_missing_file_message(path))
  if problem:
    raise cli.UsageError(f"--hparams file {path} {problem}; pass a .json file.")
  with open(path, encoding="utf-8") as f:
    return f.read()


def _missing_file_message(path: str) -> str:
  return (f"--hparams file {path} does not exist (a --hparams value ending in "
          "'.json' is read as a file path; pass a JSON object literal such as "
          "'{\"debug\": true}' otherwise).")


def path_exists(path: str) -> bool:
  """`os.path.exists`, or `tf.io.gfile.exists` for remote (`scheme://`) paths."""
  if "://" in path:
    import tensorflow as tf  # Lazy, as in `_read_text`.
    return tf.io.gfile.exists(path)
  return os.path.exists(path)


def parse_hparams(hparams: str) -> Dict[str, Any]:
  """Parses a `--hparams` value into keyword overrides.

  Args:
    hparams: str. A JSON object literal, or, if it ends with ".json", the path
      of a file holding one (local, or any scheme the TF file API reads).

  Returns:
    The decoded JSON object (a dict of hparam name -> value).

  Raises:
    HparamsFileError: the value ends with ".json" but no such file exists (a
      `cli.UsageError` and a `FileNotFoundError`).
    cli.UsageError: the path is a directory or another non-regular file, or
      the text is not valid JSON (the message gives line, column and
      character offset) or does not hold a JSON object.
  """
  if hparams.endswith(".json"):
    source = f"--hparams file {hparams}"
    text = _read_text(hparams)
  else:
    source = "--hparams value"
    text = hparams
  try:
    return files.parse_json_object(text, source)
  except files.JsonObjectError as e:  # a flag's value: a usage error
    raise cli.UsageError(f"{e} Expected a JSON object such as "
                         "'{\"learning_rate\": 1e-4}'.") from e


def hparams_help(make_config: Callable[..., "HParamsConfig"],
                 hparams: Sequence[Tuple[str, str]],
                 presets: Sequence[Tuple[str, Mapping[str, Any]]] = ()) -> List[str]:
  """`--help` lines for the most used hparams, each default read from the config class.

  Args:
    make_config: builds a config from hparam overrides, e.g.
      `functools.partial(PretrainingConfig, "<model-name>", "<data-dir>")`.
    hparams: (name, description) pairs, in the order listed.
    presets: (label, overrides) pairs; where the overrides change a default
      they do not set themselves, the line adds "label: value" (once per value).

  Returns:
    One line per hparam: `  <name>  <default as JSON>  <description> [<presets>]`.
  """
  base = make_config()
  variants = [(label, make_config(**overrides), overrides) for label, overrides in presets]
  width = max(len(name) for name, _ in hparams)
  lines = []
  for name, description in hparams:
    default = _help_value(getattr(base, name))
    changes: Dict[str, str] = {}  # value -> "label: value", the first label wins
    for label, config, overrides in variants:
      value = _help_value(getattr(config, name))
      if name not in overrides and value != default:
        changes.setdefault(value, f"{label}: {value}")
    suffix = f" [{'; '.join(changes.values())}]" if changes else ""
    if len(default) > _HELP_VALUE_WIDTH:  # A long default gets a line of its own.
      lines.append(f"  {name:<{width}}  {default}")
      default = ""
    lines.append(f"  {name if default else '':<{width}}  {default:<{_HELP_VALUE_WIDTH}} "
                 f"{description}{suffix}")
  return lines


_HELP_VALUE_WIDTH = 9


def _help_value(value: Any) -> str:
  return json.dumps(_to_jsonable(value))


# ----------------------------------------------------------------------------
# Types and validators
# ----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class HParamType:
  """The values an hparam accepts.

  Attributes:
    kind: one of "boolean", "integer", "number" (int or float), "string",
      "array", "object", "function" (a Python callable) or "any".
    nullable: whether `None` (JSON null) is accepted too.
  """
  kind: str
  nullable: bool = False

  def accepts(self, value: Any) -> bool:
    """Whether `value` has an accepted type (bool is never an integer or number)."""
    if value is None:
      return self.nullable or self.kind == "any"
    if self.kind == "any":
      return True
    if self.kind == "function":
      return callable(value)
    if isinstance(value, bool):  # bool is not an integer here.
      return self.kind == "boolean"
    if self.kind == "integer":
      return isinstance(value, numbers.Integral)
    if self.kind == "number":
      return isinstance(value, numbers.Real)
    return files.json_type_name(value) == self.kind

  def describe(self) -> str:
    """The type for error messages, e.g. "integer or null"."""
    name = {"number": "number (int or float)",
            "function": "function (not settable from JSON)"}.get(self.kind, self.kind)
    return name + " or null" if self.nullable else name


def infer_hparam_type(default: Any) -> HParamType:
  """The type of an hparam from its default (int also fits a float; None: any)."""
  if default is None:
    return HParamType("any")
  if isinstance(default, bool):
    return HParamType("boolean")
  if isinstance(default, numbers.Integral):
    return HParamType("integer")
  if isinstance(default, numbers.Real):
    return HParamType("number")
  if callable(default) and not isinstance(default, (str, list, dict)):
    return HParamType("function")
  return HParamType(files.json_type_name(default))


def one_of(*choices: Any) -> Validator:
  """Validator: the value must be one of `choices`."""
  def check(name: str, value: Any) -> None:
    if value not in choices:
      raise ValueError(f"hparam {name} must be one of {', '.join(map(repr, choices))}; "
                       f"got {value!r}.")
  return check


def at_least(minimum: int) -> Validator:
  """Validator: the value must be >= `minimum`."""
  def check(name: str, value: Any) -> None:
    if value < minimum:
      raise ValueError(f"hparam {name} must be >= {minimum}; got {value!r}.")
  return check


def greater_than(bound: float) -> Validator:
  """Validator: the value must be > `bound` (e.g. a temperature or a fraction)."""
  def check(name: str, value: Any) -> None:
    if not value > bound:
      raise ValueError(f"hparam {name} must be > {bound}; got {value!r}.")
  return check


def in_range(low: float, high: float, low_open: bool = False) -> Validator:
  """Validator: low <= value <= high (low < value if `low_open`)."""
  def check(name: str, value: Any) -> None:
    if not ((low < value) if low_open else (low <= value)) or not value <= high:
      interval = f"{'(' if low_open else '['}{low}, {high}]"
      raise ValueError(f"hparam {name} must be in {interval}; got {value!r}.")
  return check


# The original's JSON boolean hparams were read with Python truthiness, so a
# tutorial's "false" meant True; we accept exactly "true"/"false" (any case).
_BOOLEAN_STRINGS = {"true": True, "false": False}


def coerce_string_boolean(name: str, value: Any, expected: HParamType) -> Any:
  """`value` as a bool if a boolean hparam was given as the string "true"/"false"."""
  if (expected.kind == "boolean" and isinstance(value, str)
      and value.strip().lower() in _BOOLEAN_STRINGS):
    return _BOOLEAN_STRINGS[value.strip().lower()]
  return value


def check_seed(name: str, value: Optional[int]) -> None:
  """Validator: a seed is null or fits in a signed 64-bit integer (TF stateless seeds)."""
  if value is not None and not -2**63 <= value < 2**63:
    raise ValueError(f"hparam {name} must fit in a signed 64-bit integer; got {value}.")


def check_list_of_strings(name: str, value: List[Any]) -> None:
  """Validator: a non-empty list of non-empty strings."""
  if not value or not all(isinstance(v, str) and v for v in value):
    raise ValueError(f"hparam {name} must be a non-empty list of non-empty strings, "
                     f"e.g. [\"mnli\"]; got {value!r}.")


# ----------------------------------------------------------------------------
# Path templates (the original's `"...{:}...".format` attributes)
# ----------------------------------------------------------------------------

class PathTemplate:
  """A path with `{:}` fields that is called like the original's `str.format` attributes.

  Example: `PathTemplate("/d/finetuning_data/{:}")("mnli")` is
  "/d/finetuning_data/mnli". Unlike a bound `str.format`, it prints (and
  serializes) as its template.
  """

  def __init__(self, template: str):
    self.template = template

  def __call__(self, *args: Any) -> str:
    return self.template.format(*args)

  def __str__(self) -> str:
    return self.template

  def __repr__(self) -> str:
    return f"PathTemplate({self.template!r})"

  def __eq__(self, other: object) -> bool:
    return isinstance(other, PathTemplate) and other.template == self.template

  def __hash__(self) -> int:
    return hash(self.template)


def _to_jsonable(value: Any) -> Any:
  if isinstance(value, PathTemplate):
    return value.template
  if isinstance(value, tuple):
    return [_to_jsonable(v) for v in value]
  if isinstance(value, list):
    return [_to_jsonable(v) for v in value]
  if isinstance(value, dict):
    return {str(k): _to_jsonable(v) for k, v in value.items()}
  if callable(value):
    return repr(value)
  return value


# ----------------------------------------------------------------------------
# The base class
# ----------------------------------------------------------------------------

class HParamsConfig:
  """Base of the two config classes: checked updates, dumps and JSON export.

  Subclasses may declare, as class attributes:
    _HPARAM_TYPES: name -> `HParamType` where the default's type is not the
      right one (e.g. a None default that takes an int).
    _VALIDATORS: name -> validator(name, value) raising ValueError.
    _DERIVED: name -> explanation, for attributes computed by the constructor
      that can never be set (they get a specific "Unknown hparam" message).
  The new hparams common to both configs (seed, use_xla, mixed_precision,
  grad_accumulation_steps, distribution_strategy) are declared here.
  """

  _COMMON_TYPES: ClassVar[Dict[str, HParamType]] = {
      "seed": HParamType("integer", nullable=True),
      # Its "default" is read from the overrides, so its type cannot be inferred.
      "model_hparam_overrides": HParamType("object"),
      "embedding_size": HParamType("integer", nullable=True),
      "tpu_job_name": HParamType("string", nullable=True),
      "tpu_name": HParamType("string", nullable=True),
      "tpu_zone": HParamType("string", nullable=True),
      "gcp_project": HParamType("string", nullable=True),
  }
  _COMMON_VALIDATORS: ClassVar[Dict[str, Validator]] = {
      "seed": check_seed,
      "mixed_precision": one_of(*MIXED_PRECISION_CHOICES),
      "distribution_strategy": one_of(*DISTRIBUTION_STRATEGY_CHOICES),
      "grad_accumulation_steps": at_least(1),
      "worker_startup_timeout_s": at_least(1),
      "collective_timeout_s": at_least(1),
      "model_size": one_of(*MODEL_SIZE_CHOICES),
      "num_tpu_cores": at_least(1),
  }
  _HPARAM_TYPES: ClassVar[Dict[str, HParamType]] = {}
  _VALIDATORS: ClassVar[Dict[str, Validator]] = {}
  _DERIVED: ClassVar[Dict[str, str]] = {}

  def _set_tpu_defaults(self) -> None:
    """The original's TPU settings (both configs)."""
    self.use_tpu = False
    self.num_tpu_cores = 1
    self.tpu_job_name = None
    self.tpu_name = None
    self.tpu_zone = None
    self.gcp_project = None

  def _resolve_vocab_size(self, kwargs: Mapping[str, Any]) -> None:
    """vocab_size follows vocab_file (new): its line count unless given; never smaller."""
    from model import tokenization  # pylint: disable=import-outside-toplevel  (util -> model)
    if path_exists(self.vocab_file):
      self.vocab_size = tokenization.resolve_vocab_size(
          self.vocab_file, kwargs.get("vocab_size"), "hparam vocab_size")

  def _set_new_hparam_defaults(self) -> None:
    """Hparams beyond the original; the defaults keep the original's behaviour."""
    self.seed = None  # None: unseeded, like the original.
    self.use_xla = False
    self.mixed_precision = "off"
    self.grad_accumulation_steps = 1
    self.distribution_strategy = "auto"
    # multi_worker: seconds to wait for every worker to connect before giving up.
    self.worker_startup_timeout_s = 600
    # multi_worker: seconds a collective (e.g. the gradient all-reduce) may wait for the
    # other workers; a worker that died ends the run after about this long.
    self.collective_timeout_s = 300

  def _freeze_hparams(self) -> None:
    """Records every public attribute set so far as an overridable hparam, with its type."""
    declared = {**self._COMMON_TYPES, **self._HPARAM_TYPES}
    self._hparam_types = {name: declared.get(name) or infer_hparam_type(value)
                          for name, value in self._public_items()}

  def _public_items(self) -> List[Tuple[str, Any]]:
    return [(k, v) for k, v in vars(self).items() if not k.startswith("_")]

  def check_hparam(self, name: str, value: Any) -> None:
    """Checks that `name` is an overridable hparam and `value` a valid value for it.

    Args:
      name: str. The hparam name.
      value: the value, as decoded from JSON (or any Python value).

    Raises:
      ValueError: unknown (or derived) name, wrong JSON type or invalid value.
    """
    if name not in self._hparam_types:
      raise ValueError(self._unknown_message(name))
    self._check_value(name, value, self._hparam_types[name])

  def _check_value(self, name: str, value: Any, expected: HParamType) -> None:
    """Type check against `expected`, then the hparam's validator, if any."""
    if not expected.accepts(value):
      hint = (" It is a function built from the data_dir constructor argument "
              "(--data-dir); pass a Python callable or leave it out."
              if expected.kind == "function" else "")
      raise ValueError(f"hparam {name} expects type {expected.describe()}, got "
                       f"{files.json_type_name(value)} ({value!r}).{hint}")
    validator = {**self._COMMON_VALIDATORS, **self._VALIDATORS}.get(name)
    if validator is not None and value is not None:
      validator(name, value)

  def _unknown_message(self, name: str) -> str:
    message = "Unknown hparam " + name
    if name in self._DERIVED:
      return f"{message}: it is derived ({self._DERIVED[name]}) and cannot be set."
    valid = sorted(self._hparam_types)
    close = difflib.get_close_matches(name, valid, n=3, cutoff=0.6)
    if close:
      return f"{message}. Did you mean: {', '.join(close)}?"
    return f"{message}. Valid hparams: {', '.join(valid)}."

  def update(self, kwargs: Mapping[str, Any]) -> None:
    """Sets the given hparams after checking all of them (nothing is set on error).

    Args:
      kwargs: hparam name -> value, e.g. the dict parsed from `--hparams`.

    Raises:
      ValueError: see `check_hparam`.
    """
    kwargs = {name: self._coerce(name, value) for name, value in kwargs.items()}
    for name, value in kwargs.items():
      self.check_hparam(name, value)
    for name, value in kwargs.items():
      setattr(self, name, value)

  def _coerce(self, name: str, value: Any) -> Any:
    """Accepts "true"/"false" strings for boolean hparams (see coerce_string_boolean)."""
    expected = self._hparam_types.get(name)
    converted = value if expected is None else coerce_string_boolean(name, value, expected)
    noted = self.__dict__.setdefault("_noted_string_booleans", set())
    if converted is not value and name not in noted:
      noted.add(name)
      logger.info("note: hparam %s was given as the string %r; using the boolean %s "
                  "(write it without quotes to silence this note).", name, value,
                  str(converted).lower())
    return converted

  def to_dict(self) -> Dict[str, Any]:
    """Every hparam (derived ones included), JSON-serialisable, sorted by name."""
    return {k: _to_jsonable(v) for k, v in sorted(self._public_items())}

  def write_json(self, path: str) -> None:
    """Writes `to_dict()` as sorted, indented JSON (atomically)."""
    files.write_json(self.to_dict(), path)

  def dump_lines(self) -> List[str]:
    """The original's config dump: one `<name> <value>` line per attribute, sorted."""
    return [f"{k} {v}" for k, v in sorted(self._public_items())]

  def __repr__(self) -> str:
    return f"{type(self).__name__}({self.to_dict()})"
