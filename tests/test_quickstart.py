"""The quick-start's recipe is what the README says, and it is not a debug run."""
import json
import os
import re

import configure_finetuning
import configure_pretraining
from experiments import replicate_small
from model import sizes

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _script_hparams():
  """{ARCH, PRETRAIN_RECIPE, FINETUNE_RECIPE} of quickstart.sh, each parsed as JSON."""
  with open(os.path.join(REPO, "quickstart.sh"), encoding="utf-8") as f:
    text = f.read()
  parts = {}
  for name in ("ARCH", "PRETRAIN_RECIPE", "FINETUNE_RECIPE"):
    match = re.search(rf"^{name}='(.*)'$", text, re.MULTILINE)
    assert match, name
    parts[name] = json.loads("{" + match.group(1) + "}")
  return text, parts


def _readme_recipe():
  """The `| phase | hparam | value |` rows of the README's quick-start recipe table."""
  with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
    text = f.read()
  section = text.split("## Quick-start", 1)[1].split("\n## ", 1)[0]
  rows = re.findall(r"^\| (pre-training|fine-tuning) \| `(\w+)` \| `(.+)` \|", section,
                    re.MULTILINE)
  recipe = {"pre-training": {}, "fine-tuning": {}}
  for phase, name, value in rows:
    recipe[phase][name] = json.loads(value)
  return recipe


def test_readme_table_is_the_script_recipe():
  _, parts = _script_hparams()
  readme = _readme_recipe()
  assert readme["pre-training"] == {**parts["ARCH"], **parts["PRETRAIN_RECIPE"]}
  assert readme["fine-tuning"] == {**parts["ARCH"], **parts["FINETUNE_RECIPE"]}


def test_quickstart_is_not_debug_and_builds_the_documented_model(tmp_path):
  text, parts = _script_hparams()
  assert "debug" not in text  # debug wipes the model dir: re-running must resume
  config = configure_pretraining.PretrainingConfig(
      "quickstart", str(tmp_path), **parts["ARCH"], **parts["PRETRAIN_RECIPE"])
  assert not config.debug
  bert = sizes.get_model_bert_config(config)
  assert (bert.num_hidden_layers, bert.hidden_size, bert.num_attention_heads) == (3, 144, 4)
  assert sizes.get_generator_config(config, bert).hidden_size == 36
  assert config.train_batch_size == 8 and config.learning_rate == 1e-4
  ft = configure_finetuning.FinetuningConfig("quickstart", str(tmp_path), **parts["ARCH"],
                                             **parts["FINETUNE_RECIPE"])
  assert sizes.get_model_bert_config(ft).to_dict() == bert.to_dict()


def test_replication_uses_the_quickstart_encoder_and_recipe():
  _, parts = _script_hparams()
  recipe = {**parts["ARCH"], **parts["PRETRAIN_RECIPE"]}
  for key, value in replicate_small.DEFAULT_PRETRAIN_HPARAMS.items():
    if key in recipe:
      assert recipe[key] == value, key
  assert replicate_small.DEFAULT_FINETUNE_HPARAMS["learning_rate"] == (
      parts["FINETUNE_RECIPE"]["learning_rate"])
