"""`--help` of run_pretraining.py and run_finetuning.py: an example and the most used hparams."""
import json
import re

import pytest

import configure_finetuning
import configure_pretraining
import run_finetuning
import run_pretraining


def help_text(main, capsys):
  with pytest.raises(SystemExit) as e:
    main(["--help"])
  assert e.value.code == 0
  return capsys.readouterr().out


def default_of(text, name):
  """The default printed for hparam `name` (the second column of its line)."""
  match = re.search(rf"^  {name} +(\S+)", text, flags=re.MULTILINE)
  assert match, f"{name} is not listed:\n{text}"
  return json.loads(match.group(1))


def test_pretraining_help_lists_an_example_and_the_defaults(capsys):
  text = help_text(run_pretraining.main, capsys)
  assert "example:\n  python3 run_pretraining.py --data-dir $DATA_DIR --model-name " in text
  assert 'README.md, sections "Pre-train" and "Hparams"' in text
  config = configure_pretraining.PretrainingConfig("m", "/nonexistent")
  for name in ("model_size", "train_batch_size", "learning_rate", "num_train_steps",
               "num_warmup_steps", "max_seq_length", "mask_prob", "electra_objective",
               "electric_objective", "save_checkpoints_steps", "seed", "mixed_precision"):
    assert default_of(text, name) == getattr(config, name), name
  debug = configure_pretraining.PretrainingConfig("m", "/nonexistent", debug=True)
  assert re.search(rf"^  train_batch_size .*\[debug: {debug.train_batch_size}\]$", text,
                   flags=re.MULTILINE)


def test_finetuning_help_lists_an_example_the_defaults_and_presets(capsys):
  text = help_text(run_finetuning.main, capsys)
  assert "example:\n  python3 run_finetuning.py --data-dir $DATA_DIR --model-name " in text
  assert '"Custom tasks without' in text and '"Hparams"' in text
  config = configure_finetuning.FinetuningConfig("m", "/data")
  for name in ("task_names", "task_configs", "model_size", "learning_rate", "num_train_epochs",
               "max_seq_length", "train_batch_size", "num_trials", "write_test_outputs"):
    assert default_of(text, name) == getattr(config, name), name
  assert default_of(text, "init_checkpoint") == "<data-dir>/models/<model-name>"
  large = configure_finetuning.FinetuningConfig("m", "/data", model_size="large")
  qa = configure_finetuning.FinetuningConfig("m", "/data", task_names=["squad"])
  assert f"[model_size large: {large.learning_rate}]" in text
  assert f"QA tasks: {qa.max_seq_length}]" in text


def test_help_defaults_follow_the_config_class(capsys, monkeypatch):
  """Nothing is hard-coded: a changed default shows up in --help."""
  original = configure_pretraining.PretrainingConfig._set_batch_defaults

  def batch_defaults(self):
    original(self)
    self.train_batch_size = 77

  monkeypatch.setattr(configure_pretraining.PretrainingConfig, "_set_batch_defaults",
                      batch_defaults)
  assert default_of(help_text(run_pretraining.main, capsys), "train_batch_size") == 77
