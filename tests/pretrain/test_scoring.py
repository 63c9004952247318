"""Tests for pretrain/scoring.py: the scores against numpy, the NCE sign, batching, errors."""
import json
import math
import os
import random
import re

import numpy as np
import pytest
import tensorflow as tf

from configure_pretraining import PretrainingConfig
from model import checkpointing, tokenization
from pretrain import runner
from pretrain import scoring
from pretrain.pretraining_model import PretrainingModel
import score_text
from tests.conftest import SAMPLE_CORPUS, UNCASED_VOCAB
from tests.model import numpy_bert

# Discriminator H 24 (3 heads), I 37, E 10 with the real 30,522-piece vocab;
# generator 0.5 -> H 12, 1 head, I 48.
TINY_HPARAMS = {
    "model_hparam_overrides": {"hidden_size": 24, "num_hidden_layers": 2,
                               "num_attention_heads": 3, "intermediate_size": 37},
    "embedding_size": 10, "generator_hidden_size": 0.5, "max_seq_length": 40,
    "vocab_file": UNCASED_VOCAB,
}
ELECTRIC = {"electric_objective": True, "electra_objective": False}
BERT_MLM = {"electra_objective": False}
# Real sentences of different lengths (Moby-Dick, ch. 1), one empty text.
TEXTS = [
    "Call me Ishmael.",
    "It is a way I have of driving off the spleen and regulating the circulation.",
    "",
    "There is nothing surprising in this.",
    "Whenever I find myself growing grim about the mouth, I account it high time.",
]


def _model(seed, **hparams):
  model = PretrainingModel(PretrainingConfig("tiny", "/nonexistent", **{**TINY_HPARAMS,
                                                                        **hparams}))
  numpy_bert.randomize(model, seed=seed)
  return model


@pytest.fixture(scope="module")
def tokenizer():
  return tokenization.FullTokenizer(UNCASED_VOCAB)


@pytest.fixture(scope="module")
def electric_model():
  return _model(3, **ELECTRIC)


def _example(tokenizer, text):
  """Unpadded numpy [1, n + 2] ids / mask / segments of `[CLS] text [SEP]`."""
  ids = tokenizer.convert_tokens_to_ids(["[CLS]"] + tokenizer.tokenize(text) + ["[SEP]"])
  ids = np.array([ids])
  return ids, np.ones_like(ids), np.zeros_like(ids)


def _check_scores(results, expected_scores, tokenizer):
  assert len(results) == len(TEXTS)
  for text, result, expected in zip(TEXTS, results, expected_scores):
    assert result.tokens == tokenizer.tokenize(text)
    np.testing.assert_allclose(result.token_scores, expected, rtol=2e-4, atol=2e-4)
    assert result.total == pytest.approx(float(np.sum(expected)), rel=2e-4, abs=2e-4)


# ----------------------------------------------------------------------------- formulas vs numpy

def test_electric_scores_are_negated_discriminator_outputs(electric_model, tokenizer):
  w = numpy_bert.weights_of(electric_model)
  expected = []
  for text in TEXTS:
    ids, mask, segments = _example(tokenizer, text)
    seq = numpy_bert.bert_forward(w, "electra", 3, ids, mask, segments)
    energy = numpy_bert.discriminator_logits(w, seq)[0]  # [n + 2]
    expected.append(-energy[1:-1])  # -E(x)_t on the word pieces only
  # Batches of 2, sorted by length, padded to multiples of 8 (padding must not matter).
  scorer = scoring.ElectricScorer(electric_model, tokenizer, batch_size=2, max_seq_length=40,
                                  length_bucket=8)
  results = scorer.score(TEXTS)
  _check_scores(results, expected, tokenizer)
  assert results[2] == scoring.SentenceScore([], [], 0.0)
  # Random weights give O(1) energies: the comparison is not vacuous.
  assert np.std(np.concatenate(expected)) > 0.1


def test_cloze_scores_are_two_tower_log_q(electric_model, tokenizer):
  w = numpy_bert.weights_of(electric_model)
  expected = []
  for text in TEXTS:
    ids, mask, segments = _example(tokenizer, text)
    ltr = numpy_bert.bert_forward(w, "generator_ltr", 1, ids, mask, segments, ltr=True)
    rtl = numpy_bert.bert_forward(w, "generator_rtl", 1, ids, mask, segments, rtl=True)
    logits = numpy_bert.token_logits(w, "cloze_predictions", "electra/embeddings/word_embeddings",
                                     numpy_bert.cloze_reprs(ltr, rtl))[0]  # [n + 2, V]
    log_q = numpy_bert.log_softmax(logits)[np.arange(ids.shape[1]), ids[0]]
    expected.append(log_q[1:-1])
  scorer = scoring.ClozeScorer(electric_model, tokenizer, batch_size=3, max_seq_length=40)
  _check_scores(scorer.score(TEXTS), expected, tokenizer)


@pytest.mark.parametrize("hparams,scope,heads", [
    (BERT_MLM, "electra", 3),   # BERT-style MLM: the `electra` transformer
    ({}, "generator", 1),       # ELECTRA: its small generator
])
def test_mlm_scores_are_one_masked_pass_per_token(hparams, scope, heads, tokenizer):
  model = _model(5, **hparams)
  w = numpy_bert.weights_of(model)
  mask_id = tokenizer.vocab["[MASK]"]
  expected = []
  for text in TEXTS:
    ids, mask, segments = _example(tokenizer, text)
    scores = []
    for t in range(1, ids.shape[1] - 1):
      masked = ids.copy()
      masked[0, t] = mask_id
      seq = numpy_bert.bert_forward(w, scope, heads, masked, mask, segments)
      logits = numpy_bert.token_logits(w, "generator_predictions",
                                       "electra/embeddings/word_embeddings", seq[0, t])
      scores.append(numpy_bert.log_softmax(logits)[ids[0, t]])
    expected.append(np.array(scores))
  # 5 copies per pass: copies of one text straddle batches.
  scorer = scoring.MaskedLMScorer(model, tokenizer, batch_size=5, max_seq_length=40)
  _check_scores(scorer.score(TEXTS), expected, tokenizer)


def test_energy_is_the_nce_discriminator_term_with_its_sign(electric_model, tokenizer):
  """The model's logit of P(noise) is s_t + log q(x̃_t | x_\\t) + log(k/(1-k))
  (docs/model.md#electric).

  Our energy on the corrupted input must be exactly that s_t: then a LOW energy
  means "data", and -E is the (unnormalised) log-likelihood we sum.
  """
  texts = TEXTS[1::2]
  rows = [tokenizer.convert_tokens_to_ids(["[CLS]"] + tokenizer.tokenize(t) + ["[SEP]"])
          for t in texts]
  length = 24
  ids = np.array([r + [0] * (length - len(r)) for r in rows], np.int32)
  mask = (ids > 0).astype(np.int32)
  features = {"input_ids": tf.constant(ids), "input_mask": tf.constant(mask),
              "segment_ids": tf.zeros_like(tf.constant(ids))}
  out = electric_model(features, training=False, seed=tf.constant([4, 2]))
  fake = out.fake_input_ids.numpy()
  assert (fake != ids).any()  # Some positions hold generator samples.
  logits = out.cloze_logits.numpy().astype(np.float64)  # cloze of the ORIGINAL text
  log_q = np.take_along_axis(numpy_bert.log_softmax(logits), fake[..., None], -1)[..., 0]
  scorer = scoring.ElectricScorer(electric_model, tokenizer)
  energy = scorer.energies(fake, mask)
  k = electric_model.config.mask_prob
  np.testing.assert_allclose(out.disc_logits.numpy()[mask == 1],
                             (energy + log_q + math.log(k / (1 - k)))[mask == 1],
                             rtol=1e-4, atol=1e-4)


def test_xla_matches_graph_mode(electric_model, tokenizer):
  # One padded shape (length_bucket = max_seq_length, batch padded to 8): one compilation.
  options = dict(batch_size=8, max_seq_length=32, length_bucket=32)
  plain = scoring.ElectricScorer(electric_model, tokenizer, **options).score(TEXTS)
  xla = scoring.ElectricScorer(electric_model, tokenizer, use_xla=True, **options).score(TEXTS)
  for a, b in zip(plain, xla):
    np.testing.assert_allclose(a.token_scores, b.token_scores, rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------- restore, errors

def test_restore_loads_only_the_scorers_variables(electric_model, tokenizer, tmp_path):
  checkpointing.save_checkpoint(str(tmp_path), 7, electric_model.named_variables())
  fresh = _model(11, **ELECTRIC)
  scorer = scoring.make_scorer("electric", fresh, tokenizer, checkpoint=str(tmp_path))
  expected = scoring.ElectricScorer(electric_model, tokenizer).score(TEXTS[:2])
  for a, b in zip(scorer.score(TEXTS[:2]), expected):
    np.testing.assert_allclose(a.token_scores, b.token_scores, rtol=1e-5)
  assert all(n.startswith(("electra/", "discriminator_predictions/")) for n in scorer.variables())
  names = list(checkpointing.list_checkpoint(str(tmp_path)))
  assert scoring.checkpoint_kind(names) == "electric"


def test_checkpoint_kinds():
  assert scoring.checkpoint_kind(["generator_predictions/output_bias",
                                  "discriminator_predictions/dense/bias"]) == "electra"
  assert scoring.checkpoint_kind(["generator_predictions/output_bias", "electra/x"]) == "mlm"
  assert scoring.checkpoint_kind(["discriminator_predictions/dense/bias"]) == "uniform_generator"
  assert scoring.checkpoint_kind(["electra/x"]) == "unknown"


@pytest.mark.parametrize("method,hparams,match", [
    ("electric", {}, "this is an ELECTRA model: an ELECTRA discriminator.*not an energy"),
    ("electric", BERT_MLM, "this is a BERT-style masked LM: score it with --method mlm"),
    ("cloze", BERT_MLM, "two-tower cloze generator"),
    ("mlm", ELECTRIC, "two-tower cloze model: use --method electric"),
    ("mlm", {"uniform_generator": True}, "uniform generator"),
    ("bogus", {}, "Unknown scoring method 'bogus'"),
])
def test_method_model_mismatch_errors(method, hparams, match, tokenizer, tmp_path):
  # A 200-row vocab table suffices here (the special ids are < 200): the
  # vocab's first 200 lines (vocab_size follows the vocab file).
  with open(UNCASED_VOCAB, encoding="utf-8") as f:
    head = [next(f) for _ in range(200)]
  (tmp_path / "vocab.txt").write_text("".join(head), encoding="utf-8")
  model = PretrainingModel(PretrainingConfig("tiny", "/nonexistent", **{
      **TINY_HPARAMS, **hparams, "vocab_file": str(tmp_path / "vocab.txt")}))
  assert model.bert_config.vocab_size == 200
  with pytest.raises(ValueError, match=match):
    scoring.make_scorer(method, model, tokenizer)


def test_too_long_text_and_bad_sizes(electric_model, tokenizer):
  scorer = scoring.ElectricScorer(electric_model, tokenizer, max_seq_length=8)
  with pytest.raises(ValueError, match=r"Text 1 has 17 word pieces, more than max_seq_length - 2"):
    scorer.score(TEXTS[:2])
  with pytest.raises(ValueError, match="max_seq_length must be in"):
    scoring.ElectricScorer(electric_model, tokenizer, max_seq_length=513)
  with pytest.raises(ValueError, match="batch_size must be >= 1"):
    scoring.ElectricScorer(electric_model, tokenizer, batch_size=0)


# ----------------------------------------------------------------------------- trained toy models
#
# Tiny Electric and BERT-style MLM models trained here (runner.train_or_eval, fixed
# seed) on 64 real Moby-Dick sentences with a 24-piece window. Measured on this 2-core machine
# (seeds 1-6): Electric prefers the real sentence over a shuffle of its words for 94-100% of the
# pairs, the two-tower cloze score for 78-97%, the MLM for 100%, and the Electric and MLM
# choices agree on 94-100%; training takes
# ~20 s + ~13 s. The pairs are the training sentences against never-seen shuffles: an energy
# model this small needs far more than the test's time budget to generalise to held-out text
# (we measured 47-73% on held-out sentences after 300 steps of batch 128, at chance with a
# 1000-piece vocabulary), while the point here is that the one-pass energy and the
# per-token MLM scores rank texts alike on models that have learned word order. The
# generator is kept weak (generator_hidden_size 1/16): its noise is then frequency-matched
# but context-poor, which the energy learns to reject fastest (with the default 1/2 the
# energy reached only 61% in the same steps).
TOY_LENGTH = 24
TOY_STEPS = 200
TOY_HPARAMS = {
    "model_hparam_overrides": {"hidden_size": 32, "num_hidden_layers": 2,
                               "num_attention_heads": 2, "intermediate_size": 64},
    "embedding_size": 16, "generator_hidden_size": 0.0625, "max_seq_length": TOY_LENGTH,
    "train_batch_size": 64, "learning_rate": 1e-3, "num_warmup_steps": 20,
    "num_train_steps": TOY_STEPS, "weight_decay_rate": 0.0, "save_checkpoints_steps": TOY_STEPS,
    "iterations_per_loop": TOY_STEPS, "keep_checkpoint_max": 1, "seed": 1,
}


def _toy_sentences(tokenizer, count):
  """The first `count` Moby-Dick sentences of 6-12 words that fit the window."""
  sentences = []
  with open(SAMPLE_CORPUS, encoding="utf-8") as f:
    for line in f:
      for sentence in re.split(r"(?<=[.!?])\s+", line.strip()):
        if (6 <= len(sentence.split()) <= 12
            and len(tokenizer.tokenize(sentence)) <= TOY_LENGTH - 2):
          sentences.append(sentence)
          if len(sentences) == count:
            return sentences
  raise AssertionError("corpus too short")


def _shuffled(sentences, seed=0):
  """Each sentence with its words in a different random order."""
  rng = random.Random(seed)
  out = []
  for sentence in sentences:
    words = sentence.split()
    shuffled = list(words)
    while shuffled == words:
      rng.shuffle(shuffled)
    out.append(" ".join(shuffled))
  return out


def _write_toy_data(data_dir, tokenizer, sentences):
  """vocab.txt (the real vocab's pieces these sentences use) and one tfrecord file."""
  pieces = sorted({p for s in sentences for p in tokenizer.tokenize(s)})
  vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + pieces
  (data_dir / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
  index = {token: i for i, token in enumerate(vocab)}
  os.makedirs(data_dir / "pretrain_tfrecords")
  path = str(data_dir / "pretrain_tfrecords" / "pretrain_data.tfrecord-0-of-1")
  with tf.io.TFRecordWriter(path) as writer:
    for sentence in sentences:
      ids = [index["[CLS]"]] + [index[p] for p in tokenizer.tokenize(sentence)] + [index["[SEP]"]]
      pad = [0] * (TOY_LENGTH - len(ids))
      feature = {"input_ids": ids + pad, "input_mask": [1] * len(ids) + pad,
                 "segment_ids": [0] * TOY_LENGTH}
      example = tf.train.Example(features=tf.train.Features(feature={
          k: tf.train.Feature(int64_list=tf.train.Int64List(value=v))
          for k, v in feature.items()}))
      writer.write(example.SerializeToString())
  return len(vocab)


@pytest.fixture(scope="module")
def toy_models(tokenizer, tmp_path_factory):
  data_dir = tmp_path_factory.mktemp("toy")
  sentences = _toy_sentences(tokenizer, 64)
  vocab_size = _write_toy_data(data_dir, tokenizer, sentences)
  toy_tokenizer = tokenization.FullTokenizer(str(data_dir / "vocab.txt"))
  scorers = {}
  for name, objective, methods in [("electric", ELECTRIC, ("electric", "cloze")),
                                   ("mlm", BERT_MLM, ("mlm",))]:
    config = PretrainingConfig(name, str(data_dir), vocab_size=vocab_size,
                               **{**TOY_HPARAMS, **objective})
    runner.train_or_eval(config)
    model = PretrainingModel(config)
    for method in methods:
      scorers[method] = scoring.make_scorer(method, model, toy_tokenizer,
                                            checkpoint=config.model_dir, batch_size=64,
                                            max_seq_length=TOY_LENGTH)
  return data_dir, sentences, scorers


def test_one_pass_and_per_token_scores_prefer_real_order_and_agree(toy_models):
  _, sentences, scorers = toy_models
  shuffled = _shuffled(sentences)
  margins = {}
  for method, scorer in scorers.items():
    real = scorer.score(sentences)
    fake = scorer.score(shuffled)
    assert [r.tokens for r in real] != [f.tokens for f in fake]
    margins[method] = np.array([r.total - f.total for r, f in zip(real, fake)])
  # Thresholds ~10 points under the lowest value measured over six seeds.
  assert np.mean(margins["electric"] > 0) >= 0.8
  assert np.mean(margins["mlm"] > 0) >= 0.9
  assert np.mean(margins["cloze"] > 0) >= 0.7
  agreement = np.mean(np.sign(margins["electric"]) == np.sign(margins["mlm"]))
  assert agreement >= 0.8


def test_rerank_with_the_trained_electric_model_lowers_wer(toy_models, capsys):
  """n-best lists whose upstream 1-best is a shuffle: the Electric LM term fixes most."""
  data_dir, sentences, _ = toy_models
  nbest = data_dir / "nbest.jsonl"
  with open(nbest, "w", encoding="utf-8") as f:
    for k, (real, fake) in enumerate(zip(sentences, _shuffled(sentences, seed=1))):
      f.write(json.dumps({"id": k, "reference": real,
                          "hypotheses": [{"text": fake, "score": 0.0},
                                         {"text": real, "score": -0.01}]}) + "\n")
  output = data_dir / "reranked.jsonl"
  code = score_text.main(["--data-dir", str(data_dir), "--model-name", "electric", "--input",
                          str(nbest), "--output", str(output), "--rerank", "--lm-weight", "1"])
  assert code == 0
  summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert summary["lists"] == 64 and summary["method"] == "electric"
  assert summary["wer_before"] > 0.5  # the upstream 1-best is always the shuffle
  assert summary["wer_after"] < 0.2 * summary["wer_before"]
