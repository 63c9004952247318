"""Tests for score_text.py: scoring and re-ranking end to end, hparams, error messages."""
import json
import os

import numpy as np
import pytest

from configure_pretraining import PretrainingConfig
from model import checkpointing, tokenization
from pretrain import scoring, text_scoring
from pretrain.pretraining_model import PretrainingModel
import score_text
from tests.conftest import UNCASED_VOCAB
from tests.model import numpy_bert

TINY_HPARAMS = {
    "model_hparam_overrides": {"hidden_size": 24, "num_hidden_layers": 1,
                               "num_attention_heads": 3, "intermediate_size": 37},
    "embedding_size": 10, "generator_hidden_size": 0.5, "max_seq_length": 24,
}
ELECTRIC = {"electric_objective": True, "electra_objective": False}
TEXTS = ["Call me Ishmael.", "", "There is nothing surprising in this."]


def _save_model(data_dir, name, write_config=True, **hparams):
  """A random tiny model saved like run_pretraining (checkpoint + pretrain_config.json)."""
  config = PretrainingConfig(name, str(data_dir), vocab_file=UNCASED_VOCAB,
                             **{**TINY_HPARAMS, **hparams})
  model = PretrainingModel(config)
  numpy_bert.randomize(model, seed=len(name))
  checkpointing.save_checkpoint(config.model_dir, 3, model.named_variables())
  if write_config:
    config.write_json(os.path.join(config.model_dir, "pretrain_config.json"))
  return model


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("score_text")
  models = {"elec": _save_model(root, "elec", **ELECTRIC),
            "electra": _save_model(root, "electra"),
            "bare_electra": _save_model(root, "bare_electra", write_config=False)}
  return root, models


@pytest.fixture(scope="module")
def tokenizer():
  return tokenization.FullTokenizer(UNCASED_VOCAB)


def _run(capsys, *argv):
  """(exit code, parsed stdout summary or None, stderr)."""
  code = score_text.main([str(a) for a in argv])
  captured = capsys.readouterr()
  summary = json.loads(captured.out.strip().splitlines()[-1]) if code == 0 else None
  return code, summary, captured.err


def _read_jsonl(path):
  with open(path, encoding="utf-8") as f:
    return [json.loads(line) for line in f]


# ----------------------------------------------------------------------------- scoring

@pytest.mark.parametrize("name,method,scorer_class", [
    ("elec", "electric", scoring.ElectricScorer),
    ("elec", "cloze", scoring.ClozeScorer),
    ("electra", "mlm", scoring.MaskedLMScorer),
])
def test_score_text_file_matches_the_api(data_dir, tokenizer, capsys, tmp_path, name, method,
                                         scorer_class):
  root, models = data_dir
  source = tmp_path / "in.txt"
  source.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
  out = tmp_path / "out.jsonl"
  code, summary, _ = _run(capsys, "--data-dir", root, "--model-name", name, "--input", source,
                          "--output", out, "--method", method, "--batch-size", 2)
  assert code == 0
  expected = scorer_class(models[name], tokenizer, max_seq_length=24).score(TEXTS)
  lines = _read_jsonl(out)
  assert [line["text"] for line in lines] == TEXTS
  for line, want in zip(lines, expected):
    assert line["tokens"] == want.tokens
    np.testing.assert_allclose(line["token_scores"], want.token_scores, rtol=1e-5, atol=1e-6)
    assert line["score"] == pytest.approx(want.total, rel=1e-5, abs=1e-6)
  assert summary["texts"] == 3 and summary["method"] == method
  assert summary["tokens"] == sum(len(tokenizer.tokenize(t)) for t in TEXTS)


def test_jsonl_input_keeps_other_fields(data_dir, capsys, tmp_path):
  root, _ = data_dir
  source = tmp_path / "in.jsonl"
  source.write_text('{"id": 7, "text": "Call me Ishmael."}\n\n{"text": "Whale.", "x": [1]}\n',
                    encoding="utf-8")
  out = tmp_path / "out.jsonl"
  assert _run(capsys, "--data-dir", root, "--model-name", "elec", "--input", source,
              "--output", out)[0] == 0
  lines = _read_jsonl(out)
  assert [(line.get("id"), line.get("x"), line["tokens"]) for line in lines] == [
      (7, None, ["call", "me", "is", "##hma", "##el", "."]), (None, [1], ["whale", "."])]


def test_hparams_without_saved_config(data_dir, capsys, tmp_path):
  """No pretrain_config.json: --hparams must describe the model."""
  root, _ = data_dir
  source = tmp_path / "in.txt"
  source.write_text("Call me Ishmael.\n", encoding="utf-8")
  hparams = json.dumps({**TINY_HPARAMS, "vocab_file": UNCASED_VOCAB})
  code, _, _ = _run(capsys, "--data-dir", root, "--model-name", "bare_electra", "--hparams",
                    hparams, "--input", source, "--output", tmp_path / "o.jsonl", "--method",
                    "mlm")
  assert code == 0
  code, _, err = _run(capsys, "--data-dir", root, "--model-name", "bare_electra", "--hparams",
                      json.dumps({**json.loads(hparams), **ELECTRIC}), "--input", source,
                      "--output", tmp_path / "o2.jsonl")
  assert code == 1
  assert "holds an ELECTRA model, but the hparams build an Electric model" in err


# ----------------------------------------------------------------------------- re-ranking

# Hypotheses with hand-counted word errors against the reference.
NBEST = [
    {"id": "a", "reference": "call me ishmael",
     "hypotheses": [{"text": "call me fishmeal", "score": -1.0, "errors": 1},
                    {"text": "call me ishmael", "score": -1.5, "errors": 0},
                    {"text": "call ishmael", "score": -2.0, "errors": 1}]},
    {"id": "b", "reference": "there is nothing surprising in this",
     "hypotheses": [{"text": "there is nothing surprising in this", "score": -3.0, "errors": 0},
                    {"text": "there is nothing surprising in miss", "score": -2.5, "errors": 1},
                    {"text": "this in surprising nothing is there", "score": -2.9, "errors": 6}]},
    {"id": "c",  # no reference: re-ranked but not in the WER
     "hypotheses": [{"text": "whale", "score": 0.0}, {"text": "wail", "score": 0.0}]},
]


@pytest.mark.parametrize("lm_weight", [0.0, 0.7, 1000.0])
def test_rerank_end_to_end(data_dir, tokenizer, capsys, tmp_path, lm_weight):
  root, models = data_dir
  source = tmp_path / "nbest.jsonl"
  source.write_text("".join(json.dumps(r) + "\n" for r in NBEST), encoding="utf-8")
  out = tmp_path / "reranked.jsonl"
  code, summary, _ = _run(capsys, "--data-dir", root, "--model-name", "elec", "--input", source,
                          "--output", out, "--rerank", "--lm-weight", lm_weight)
  assert code == 0
  scorer = scoring.ElectricScorer(models["elec"], tokenizer, max_seq_length=24)
  lines = _read_jsonl(out)
  errors_before = errors_after = changed = 0
  for record, line in zip(NBEST, lines):
    hyps = record["hypotheses"]
    lm = [s.total for s in scorer.score([h["text"] for h in hyps])]
    combined = [h["score"] + lm_weight * s for h, s in zip(hyps, lm)]
    order = sorted(range(len(hyps)), key=lambda k: (-combined[k], k))
    assert [h["index"] for h in line["hypotheses"]] == order
    for h in line["hypotheses"]:
      assert h["lm_score"] == pytest.approx(lm[h["index"]], rel=1e-5, abs=1e-6)
      assert h["combined_score"] == pytest.approx(combined[h["index"]], rel=1e-5, abs=1e-5)
      assert h["text"] == hyps[h["index"]]["text"]
    assert line["best"] == hyps[order[0]]["text"]
    upstream = max(range(len(hyps)), key=lambda k: (hyps[k]["score"], -k))
    changed += order[0] != upstream
    if "reference" in record:
      n_words = len(record["reference"].split())
      errors_before += hyps[upstream]["errors"]
      errors_after += hyps[order[0]]["errors"]
      assert line["wer_before"] == pytest.approx(hyps[upstream]["errors"] / n_words)
      assert line["wer_after"] == pytest.approx(hyps[order[0]]["errors"] / n_words)
    else:
      assert "wer_before" not in line
  assert summary["lists"] == 3 and summary["hypotheses"] == 8
  assert summary["lists_with_reference"] == 2 and summary["reference_words"] == 9
  assert (summary["errors_before"], summary["errors_after"]) == (errors_before, errors_after)
  assert summary["wer_before"] == pytest.approx(2 / 9)  # upstream picks "fishmeal", "miss"
  assert summary["wer_after"] == pytest.approx(errors_after / 9)
  assert summary["changed_1best"] == changed
  if lm_weight == 0.0:
    assert changed == 0 and errors_after == errors_before


def test_rerank_function_wer_by_hand():
  """λ = 1 with hand-made LM scores: list a flips to the correct hypothesis."""
  nbest = [{"id": 1, "reference": "a b c", "hypotheses": [{"text": "a x c", "score": 0.0},
                                                           {"text": "a b c", "score": -1.0}]},
           {"id": 2, "reference": "d e", "hypotheses": [{"text": "d e", "score": 0.0},
                                                        {"text": "d", "score": -0.5}]}]
  outputs, summary = text_scoring.rerank(nbest, [[-5.0, -2.0], [-1.0, -0.2]], lm_weight=1.0)
  # Combined: list 1: -5 vs -3 -> "a b c"; list 2: -1 vs -0.7 -> "d" (a deletion).
  assert [o["best"] for o in outputs] == ["a b c", "d"]
  assert summary["errors_before"] == 1 and summary["errors_after"] == 1
  assert summary["wer_before"] == summary["wer_after"] == pytest.approx(1 / 5)
  assert summary["changed_1best"] == 2
  assert outputs[1]["wer_after"] == 0.5


# ----------------------------------------------------------------------------- errors

def _error(capsys, *argv, code=1):
  """The error line of a failed run (exit code `code`: 1 data, 2 flags)."""
  got, _, err = _run(capsys, *argv)
  assert got == code, err
  last = err.strip().splitlines()[-1]
  assert last.startswith("error: ")  # one error line after the log lines
  return last


def test_cli_errors(data_dir, capsys, tmp_path):
  root, _ = data_dir
  texts = tmp_path / "in.txt"
  texts.write_text("Call me Ishmael.\n", encoding="utf-8")
  out = tmp_path / "out.jsonl"
  base = ["--data-dir", root, "--input", texts, "--output", out]
  assert "Model directory" in _error(capsys, *base, "--model-name", "missing")
  assert "this is an ELECTRA model: an ELECTRA discriminator outputs P(replaced)" in _error(
      capsys, *base, "--model-name", "electra", "--method", "electric")
  assert "two-tower cloze model: use --method electric" in _error(
      capsys, *base, "--model-name", "elec", "--method", "mlm")
  os.makedirs(root / "models" / "empty", exist_ok=True)
  assert "No checkpoint in directory" in _error(capsys, *base, "--model-name", "empty")
  assert "--lm-weight only applies with --rerank" in _error(
      capsys, *base, "--model-name", "elec", "--lm-weight", 2, code=2)
  assert "--batch-size must be >= 1" in _error(
      capsys, *base, "--model-name", "elec", "--batch-size", 0, code=2)
  assert "more than max_seq_length - 2 = 3" in _error(
      capsys, *base, "--model-name", "elec", "--max-seq-length", 5)
  assert "Unknown hparam learning_rat" in _error(
      capsys, *base, "--model-name", "elec", "--hparams", '{"learning_rat": 1}')
  assert not out.exists()


@pytest.mark.parametrize("content,match", [
    ('{"id": 1}\n', r"nbest.jsonl:1: an n-best line needs a non-empty \"hypotheses\" list"),
    ('\n{"hypotheses": [{"text": "a"}]}\n', r"nbest.jsonl:2: hypothesis 0 needs a string"),
    ('{"hypotheses": [{"text": "a", "score": true}]}\n', "numeric"),
    ('{"hypotheses": [{"text": "a", "score": 1}], "reference": 3}\n', "must be a string"),
    ("not json\n", r"nbest.jsonl:1 is not valid JSON"),
    ("[1, 2]\n", "nbest.jsonl:1 must be a JSON object"),
])
def test_bad_nbest_files(data_dir, capsys, tmp_path, content, match):
  root, _ = data_dir
  source = tmp_path / "nbest.jsonl"
  source.write_text(content, encoding="utf-8")
  err = _error(capsys, "--data-dir", root, "--model-name", "elec", "--input", source,
               "--output", tmp_path / "o.jsonl", "--rerank")
  assert __import__("re").search(match, err), err


def test_bad_text_jsonl(data_dir, capsys, tmp_path):
  root, _ = data_dir
  source = tmp_path / "in.jsonl"
  source.write_text('{"text": "ok"}\n{"txt": "typo"}\n', encoding="utf-8")
  err = _error(capsys, "--data-dir", root, "--model-name", "elec", "--input", source,
               "--output", tmp_path / "o.jsonl")
  assert 'in.jsonl:2: a .jsonl input line needs a string "text" field' in err


def test_output_may_not_be_the_input(data_dir, capsys, tmp_path):
  """--output naming the --input file (directly, via a symlink or a hard link) is refused."""
  root, _ = data_dir
  texts = tmp_path / "in.txt"
  texts.write_text("Call me Ishmael.\n", encoding="utf-8")
  before = texts.read_bytes()
  os.symlink(texts, tmp_path / "link.txt")
  os.link(texts, tmp_path / "hard.txt")
  os.makedirs(tmp_path / "sub")
  for output in (texts, tmp_path / "link.txt", tmp_path / "hard.txt",
                 tmp_path / "sub" / ".." / "in.txt"):
    err = _error(capsys, "--data-dir", root, "--model-name", "elec", "--input", texts,
                 "--output", output, "--overwrite", code=2)
    assert f"--output {output} is the --input file {texts} (same file)" in err, err
  # And the other way round: --input through the link, --output the file itself.
  err = _error(capsys, "--data-dir", root, "--model-name", "elec", "--input",
               tmp_path / "link.txt", "--output", texts, code=2)
  assert "is the --input file" in err
  assert texts.read_bytes() == before and os.path.islink(tmp_path / "link.txt")
  assert sorted(os.listdir(tmp_path)) == ["hard.txt", "in.txt", "link.txt", "sub"]


def test_existing_output_needs_overwrite(data_dir, capsys, tmp_path):
  root, _ = data_dir
  texts = tmp_path / "in.txt"
  texts.write_text("Call me Ishmael.\n", encoding="utf-8")
  out = tmp_path / "scores.jsonl"
  out.write_text("keep me\n", encoding="utf-8")
  base = ["--data-dir", root, "--model-name", "elec", "--input", texts, "--output", out]
  err = _error(capsys, *base, code=2)
  assert err == (f"error: --output {out} already exists; pass --overwrite to replace it, or "
                 "choose another --output.")
  assert out.read_text(encoding="utf-8") == "keep me\n"
  assert _run(capsys, *base, "--overwrite")[0] == 0
  assert _read_jsonl(out)[0]["text"] == "Call me Ishmael."
  assert sorted(os.listdir(tmp_path)) == ["in.txt", "scores.jsonl"]  # no temporary file left


def test_output_in_a_model_directory_is_refused_even_with_overwrite(data_dir, capsys, tmp_path):
  """Writing `<data-dir>/models/<name>/checkpoint` would make the model unloadable."""
  root, _ = data_dir
  texts = tmp_path / "in.txt"
  texts.write_text("Call me Ishmael.\n", encoding="utf-8")
  model_dir = root / "models" / "elec"
  before = {name: (model_dir / name).read_bytes() for name in os.listdir(model_dir)
            if os.path.isfile(model_dir / name)}
  released = tmp_path / "released"
  released.mkdir()
  for output, what, extra in (
      (model_dir / "checkpoint", f"is inside the model directory {model_dir}", []),
      (root / "models" / "scores.jsonl", "is inside the models directory", []),
      (released / "scores.jsonl", "is inside the --checkpoint directory",
       ["--checkpoint", released / "model.ckpt-3"])):
    err = _error(capsys, "--data-dir", root, "--model-name", "elec", "--input", texts,
                 "--output", output, "--overwrite", *extra, code=2)
    assert err.startswith(f"error: --output {output} {what}"), err
  assert {name: (model_dir / name).read_bytes() for name in before} == before
  assert not os.path.exists(root / "models" / "scores.jsonl")


def test_input_that_is_not_a_regular_file(data_dir, capsys, tmp_path):
  """A directory or a FIFO as --input is named as such (a FIFO is never opened)."""
  root, _ = data_dir
  os.mkfifo(tmp_path / "fifo.txt")
  for source, what in ((tmp_path, "is a directory"),
                       (tmp_path / "fifo.txt", "is not a regular file (a FIFO)"),
                       (tmp_path / "nope.txt", "does not exist")):
    err = _error(capsys, "--data-dir", root, "--model-name", "elec", "--input", source,
                 "--output", tmp_path / "out.jsonl")
    assert err == f"error: --input {source} {what}.", err


def test_missing_hparams_file_is_a_flag_error(data_dir, capsys, tmp_path):
  root, _ = data_dir
  texts = tmp_path / "in.txt"
  texts.write_text("Call me Ishmael.\n", encoding="utf-8")
  err = _error(capsys, "--data-dir", root, "--model-name", "elec", "--input", texts,
               "--output", tmp_path / "out.jsonl", "--hparams", tmp_path / "nope.json", code=2)
  assert f"--hparams file {tmp_path / 'nope.json'} does not exist" in err

