"""The shared hparams mechanism: --hparams parsing, type rules, path templates."""
import json
import os

import pytest

from util import cli

from training import config_base
from training.config_base import HParamType, PathTemplate, infer_hparam_type, parse_hparams


def test_parse_literal():
  assert parse_hparams("{}") == {}
  assert parse_hparams('{"debug": true, "task_names": ["rte"], "x": null}') == {
      "debug": True, "task_names": ["rte"], "x": None}


def test_parse_json_file(tmp_path):
  path = tmp_path / "hp.json"
  path.write_text('{\n  "learning_rate": 0.0002,\n  "model_size": "base"\n}\n')
  assert parse_hparams(str(path)) == {"learning_rate": 2e-4, "model_size": "base"}


def test_missing_json_file_names_it(tmp_path):
  missing = str(tmp_path / "nope.json")
  with pytest.raises(FileNotFoundError, match=f"--hparams file {missing} does not exist") as e:
    parse_hparams(missing)
  assert isinstance(e.value, cli.UsageError)  # a flag mistake: exit 2
  assert cli.exit_code(e.value) == cli.USAGE_EXIT


def test_json_path_that_is_a_directory_or_fifo_says_what_it_is(tmp_path):
  """Checked before opening: opening a FIFO would block (the test would hang)."""
  folder = tmp_path / "conf.json"
  folder.mkdir()
  with pytest.raises(cli.UsageError, match=f"--hparams file {folder} is a directory"):
    parse_hparams(str(folder))
  fifo = str(tmp_path / "fifo.json")
  os.mkfifo(fifo)
  with pytest.raises(cli.UsageError,
                     match=f"--hparams file {fifo} is not a regular file \\(a FIFO\\)"):
    parse_hparams(fifo)


def test_malformed_json_reports_position(tmp_path):
  with pytest.raises(ValueError, match=r"--hparams value is not valid JSON: .* line 1 column 11 "
                                       r"\(char 10\)"):
    parse_hparams('{"debug": tru}')
  path = tmp_path / "bad.json"
  path.write_text('{\n  "debug": true,\n}\n')
  with pytest.raises(ValueError, match=r"--hparams file .*bad\.json is not valid JSON: .* "
                                       r"line 3 column 1"):
    parse_hparams(str(path))


@pytest.mark.parametrize("text,kind", [("[1, 2]", "array"), ('"debug"', "string"),
                                       ("3", "integer"), ("null", "null")])
def test_non_object_is_rejected(text, kind):
  with pytest.raises(ValueError, match=f"must be a JSON object .*got a JSON {kind}"):
    parse_hparams(text)


@pytest.mark.parametrize("default,good,bad", [
    (True, [False], [0, 1, "true", None]),
    (3, [0, -7, 2**40], [True, 3.0, "3", None]),
    (0.5, [1, 0.25, -2], [True, "0.5", None]),  # int fits a float hparam
    ("small", ["base"], [1, None, ["small"]]),
    (["chunk"], [[], ["a", "b"]], ["chunk", {"a": 1}]),
    ({}, [{"hidden_size": 1}], [[], "x"]),
    (None, [None, 1, "x", [1], {"a": 1}], []),  # a None default accepts any value
])
def test_type_inferred_from_default(default, good, bad):
  hparam_type = infer_hparam_type(default)
  for value in good:
    assert hparam_type.accepts(value), value
  for value in bad:
    assert not hparam_type.accepts(value), value


def test_nullable_and_function_types():
  assert HParamType("integer", nullable=True).accepts(None)
  assert not HParamType("integer", nullable=True).accepts(True)
  assert infer_hparam_type(PathTemplate("{:}")).kind == "function"
  assert HParamType("function").accepts(len) and not HParamType("function").accepts("x")


def test_path_template():
  template = PathTemplate("/d/test_predictions/{:}_{:}_{:}_predictions.pkl")
  assert template("mnli", "test_matched", 1) == "/d/test_predictions/mnli_test_matched_1_predictions.pkl"
  assert str(template) == "/d/test_predictions/{:}_{:}_{:}_predictions.pkl"
  assert template == PathTemplate(template.template) and hash(template) == hash(str(template))


class _Toy(config_base.HParamsConfig):
  _VALIDATORS = {"ratio": config_base.at_least(0)}
  _DERIVED = {"double": "2 * ratio"}

  def __init__(self, **kwargs):
    self.ratio = 0.5
    self.name = "toy"
    self.path = PathTemplate("/x/{:}")
    self._freeze_hparams()
    self.update(kwargs)
    self.double = 2 * self.ratio


def test_base_class_mechanics(tmp_path):
  toy = _Toy(ratio=2)
  assert toy.to_dict() == {"double": 4, "name": "toy", "path": "/x/{:}", "ratio": 2}
  assert toy.dump_lines() == ["double 4", "name toy", "path /x/{:}", "ratio 2"]
  with pytest.raises(ValueError, match=r"^hparam ratio must be >= 0; got -1"):
    _Toy(ratio=-1)
  with pytest.raises(ValueError, match=r"^Unknown hparam double: it is derived \(2 \* ratio\)"):
    toy.update({"double": 3})
  with pytest.raises(ValueError, match=r"^Unknown hparam nmae\. Did you mean: name\?"):
    toy.update({"nmae": "x"})
  toy.write_json(str(tmp_path / "toy.json"))
  assert json.loads((tmp_path / "toy.json").read_text()) == toy.to_dict()
