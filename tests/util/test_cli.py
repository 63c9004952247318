"""util/cli.py: one `error:` line, exit 2 for usage and 1 for data errors, no traceback."""

import logging
import re

import pytest

import configure_pretraining
from util import cli


def _raise(error):
  def main(_):
    raise error
  return main


@pytest.mark.parametrize("error,code", [
    (cli.UsageError("bad flag"), 2),
    (ValueError("Unknown hparam foo"), 2),
    (cli.DataError("corrupt shard x"), 1),
    (FileNotFoundError(2, "No such file or directory", "/x/vocab.txt"), 1),
    (PermissionError(13, "Permission denied", "/x/y"), 1),
])
def test_reported_errors_give_one_line_and_exit_code(error, code, capsys, monkeypatch):
  monkeypatch.delenv(cli.TRACEBACK_ENV, raising=False)
  assert cli.run(_raise(error)) == code
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err
  if isinstance(error, OSError):
    assert err == f"error: {error.strerror}: {error.filename}\n"


def test_traceback_on_request_and_bugs_propagate(capsys, monkeypatch):
  monkeypatch.setenv(cli.TRACEBACK_ENV, "1")
  assert cli.run(_raise(ValueError("boom"))) == 2
  err = capsys.readouterr().err
  assert "Traceback" in err and err.endswith("error: boom\n")
  with pytest.raises(KeyError):  # A bug is not a user's mistake: full traceback.
    cli.run(_raise(KeyError("k")))


def test_results_extra_errors_and_interrupt(capsys):
  assert cli.run(lambda argv: None) == 0
  assert cli.run(lambda argv: 3) == 3
  assert cli.run(lambda argv: {"accuracy": 1.0}) == 0
  assert cli.run(_raise(RuntimeError("jobs failed")), extra_data_errors=(RuntimeError,)) == 1
  assert cli.run(_raise(KeyboardInterrupt())) == 130
  assert capsys.readouterr().err.splitlines() == ["error: jobs failed", "error: interrupted"]


def test_tf_errors_are_data_errors_with_their_message(capsys):
  tf = pytest.importorskip("tensorflow")
  error = tf.errors.DataLossError(None, None, "corrupted record at 12 in /d/shard-3")
  assert cli.run(_raise(error)) == 1
  assert capsys.readouterr().err == "error: corrupted record at 12 in /d/shard-3\n"


@pytest.mark.parametrize("given,expected", [("true", True), ("FALSE", False), (" True ", True)])
def test_string_booleans_become_booleans_with_a_note(given, expected, caplog, monkeypatch):
  # A script's main() may have turned the "electra" logger's propagation off.
  monkeypatch.setattr(logging.getLogger("electra"), "propagate", True)
  with caplog.at_level("INFO", logger="electra"):
    config = configure_pretraining.PretrainingConfig("m", "/d", do_eval=given)
  assert config.do_eval is expected
  notes = [r.getMessage() for r in caplog.records if "do_eval" in r.getMessage()]
  assert len(notes) == 1 and "string" in notes[0]


@pytest.mark.parametrize("value", ["yes", "0", "", 1])
def test_other_values_for_booleans_stay_errors(value):
  with pytest.raises(ValueError, match="^hparam do_eval expects type boolean"):
    configure_pretraining.PretrainingConfig("m", "/d", do_eval=value)


@pytest.mark.parametrize("name,value,needle", [
    ("save_checkpoints_steps", 0, "must be >= 1"),
    ("train_batch_size", 0, "must be >= 1"),
    ("eval_batch_size", -1, "must be >= 1"),
    ("num_train_steps", 0, "must be >= 1"),
    ("max_seq_length", 0, "must be >= 1"),
    ("iterations_per_loop", 0, "must be >= 1"),
    ("keep_checkpoint_max", -1, "must be >= 0"),
    ("learning_rate", -1e-4, "must be >= 0"),
    ("mask_prob", 0.0, "must be in (0, 1]"),
    ("mask_prob", 1.5, "must be in (0, 1]"),
    ("temperature", 0.0, "must be > 0"),
    ("generator_hidden_size", 0.0, "must be > 0"),
])
def test_numeric_hparams_out_of_range_name_the_hparam(name, value, needle):
  with pytest.raises(ValueError, match="^" + re.escape(f"hparam {name} {needle}")):
    configure_pretraining.PretrainingConfig("m", "/d", **{name: value})


def test_valid_edges_are_accepted():
  config = configure_pretraining.PretrainingConfig(
      "m", "/d", keep_checkpoint_max=0, mask_prob=1.0, num_warmup_steps=0, learning_rate=0.0)
  assert (config.keep_checkpoint_max, config.mask_prob) == (0, 1.0)
