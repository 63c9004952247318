"""The ELECTRA / Electric pre-training model: generator, discriminator, heads, losses.

See docs/model.md#pre-training-model, docs/checkpoints.md#pre-training-variables. Letters: B batch,
S sequence length, P predictions per sequence (`max_predictions_per_seq`), H discriminator hidden
size, G generator hidden size, E embedding width, V vocabulary size.

Network selection (docs/model.md#network-selection):

| case | generator | generator loss |
| --- | --- | --- |
| `uniform_generator` | none (all-zero logits) | MLM loss of uniform logits |
| objective, `untied_generator`, `two_tower_generator` | `generator_ltr` + `generator_rtl` (unmasked) | cloze loss |
| objective and `untied_generator` (default) | `generator` on the masked input | MLM loss |
| otherwise (BERT MLM, or tied generator) | the `electra` transformer itself | MLM loss |

"objective" = `electra_objective or electric_objective`; only then is the
discriminator (`electra`, shared embeddings `electra/embeddings`) built.

Randomness: `__call__` takes one seed [2] and folds in a fixed key per use
(masking, generator dropout, sampling, discriminator dropout), so a seeded
step is reproducible and resumes exactly.
"""
from __future__ import annotations

import math
from typing import Any, Dict, NamedTuple, Optional

import tensorflow as tf

from model import modeling, sizes, stateless_random
from model.modeling import BertConfig, BertModel, Dense, Embeddings, LayerNorm, NamedModule
from pretrain import pretrain_helpers
from pretrain.pretrain_data import Inputs, features_to_inputs, get_updated_inputs
from pretrain.pretrain_helpers import SpecialTokenIds

# Fixed fold-in keys, one per random use site (never renumber: it would change
# every seeded run).
_SEED_MASK = 0
_SEED_GENERATOR = 1
_SEED_SAMPLE = 2
_SEED_DISCRIMINATOR = 3
_SEED_GENERATOR_RTL = 4

_COMPUTE_DTYPES = {"off": tf.float32, "bf16": tf.bfloat16, "fp16": tf.float16}


class SoftmaxOutput(NamedTuple):
  """A softmax classifier's outputs (docs/model.md#softmax-loss); all float32 except preds.

  Attributes:
    logits: [..., V].
    loss: scalar, Σ weights · per_example_loss / (Σ weights + 1e-6).
    per_example_loss: [...], -log softmax(logits)[target] per slot.
    preds: int32 [...], argmax of the logits.
    exp_weights: [..., V] exp(logits - max(logits)) per row, no gradient: the
      unnormalised softmax the loss computed, which the generator's sampler
      re-uses (`pretrain_helpers.sample_from_softmax(..., exp_weights=)`).
  """
  logits: tf.Tensor
  loss: tf.Tensor
  per_example_loss: tf.Tensor
  preds: tf.Tensor
  exp_weights: tf.Tensor


def sparse_softmax_cross_entropy(logits: tf.Tensor, labels: tf.Tensor,
                                 return_exp_weights: bool = False):
  """-log softmax(logits)[label] per row, as `tf.nn.sparse_softmax_cross_entropy_with_logits`.

  Written out because TF's fused kernel is slow on CPU for the MLM's
  30,522-way softmax (~150 ms of a 2-thread ELECTRA-Small step); this takes
  about half: one exp pass shared by loss and gradient, and the gradient
  softmax·dy - onehot·dy as one dense pass plus a sparse update.

  Args:
    logits: float32 [..., V].
    labels: int32 [...] in [0, V).
    return_exp_weights: also return exp(logits - max) [..., V] (no gradient).

  Returns:
    float32 [...] per-row losses, or (losses, exp weights).
  """
  shape = modeling.shape_list(labels)
  num_classes = modeling.shape_list(logits)[-1]
  flat_logits = tf.reshape(logits, [-1, num_classes])
  flat_labels = tf.reshape(labels, [-1])
  rows = tf.range(modeling.shape_list(flat_labels)[0])
  label_index = tf.stack([rows, flat_labels], axis=1)  # [N, 2]
  # Loss and gradient are functions of these; no gradient flows through them.
  constant_logits = tf.stop_gradient(flat_logits)
  row_max = tf.reduce_max(constant_logits, axis=-1, keepdims=True)  # [N, 1]
  exp = tf.exp(constant_logits - row_max)  # [N, V]
  sum_exp = tf.reduce_sum(exp, axis=-1, keepdims=True)  # [N, 1]

  @tf.custom_gradient
  def xent(flat_logits):
    loss = tf.math.log(sum_exp[:, 0]) - (tf.gather_nd(flat_logits, label_index) - row_max[:, 0])

    def grad(dy):
      dlogits = exp * (dy[:, None] / sum_exp)
      return tf.tensor_scatter_nd_sub(dlogits, label_index, dy)
    return loss, grad

  losses = tf.reshape(xent(flat_logits), shape)
  if return_exp_weights:
    return losses, tf.reshape(exp, modeling.shape_list(logits))
  return losses


def get_softmax_output(logits: tf.Tensor, targets: tf.Tensor,
                       weights: tf.Tensor) -> SoftmaxOutput:
  """Weighted softmax cross-entropy, one mean over all weighted slots (docs/model.md#softmax-loss).

  Args:
    logits: float [..., V].
    targets: int [...] ids in [0, V).
    weights: float [...].

  Returns:
    SoftmaxOutput.
  """
  logits = tf.cast(logits, tf.float32)
  weights = tf.cast(weights, tf.float32)
  per_example_loss, exp_weights = sparse_softmax_cross_entropy(
      logits, tf.cast(targets, tf.int32), return_exp_weights=True)
  loss = tf.reduce_sum(weights * per_example_loss) / (tf.reduce_sum(weights) + 1e-6)
  preds = tf.argmax(logits, axis=-1, output_type=tf.int32)
  return SoftmaxOutput(logits, loss, per_example_loss, preds, exp_weights)


class TokenPredictionsHead(NamedModule):
  """MLM / cloze head (docs/model.md#generator-head): logits = LN(act(r W + b)) · tableᵀ +
  output_bias.

  Variables `<scope>/dense/{kernel [in, E_tab], bias}` (trunc-normal),
  `<scope>/LayerNorm/{beta,gamma}` [E_tab], `<scope>/output_bias` [V].

  Args:
    bert_config: BertConfig of the discriminator (activation, init range, V).
    input_size: width of the representations (G, or 2·G for the cloze head).
    embedding_table: the [V, E_tab] table the output projection reuses.
    scope: "generator_predictions" or "cloze_predictions".
  """

  def __init__(self, bert_config: BertConfig, input_size: int,
               embedding_table: tf.Variable, scope: str):
    super().__init__(scope)
    self.embedding_table = embedding_table
    width = embedding_table.shape[-1]
    self.dense = Dense(f"{scope}/dense", input_size, width,
                       modeling.truncated_normal(bert_config.initializer_range),
                       activation=modeling.get_activation(bert_config.hidden_act))
    self.layer_norm = LayerNorm(f"{scope}/LayerNorm", width)
    self.output_bias = self.create_variable("output_bias", [bert_config.vocab_size],
                                            modeling.zeros())

  def __call__(self, reprs: tf.Tensor) -> tf.Tensor:
    """Maps [B, K, in] representations to float32 logits [B, K, V]."""
    hidden = self.layer_norm(self.dense(reprs))  # [B, K, E_tab]
    table = tf.cast(self.embedding_table, hidden.dtype)
    # A flat matmul against the transposed table: its gradients are two plain
    # matmuls (the einsum's were ~25% slower on CPU).
    logits = tf.matmul(tf.reshape(hidden, [-1, table.shape[-1]]), table,
                       transpose_b=True)  # [B·K, V]
    # bias_add on the 2-D product: in float32 grappler fuses it into the
    # matmul (one pass fewer over the [B·K, V] logits).
    logits = tf.nn.bias_add(tf.cast(logits, tf.float32), self.output_bias)
    return tf.reshape(logits, modeling.shape_list(hidden)[:-1] + [table.shape[0]])  # [B, K, V]


class DiscriminatorHead(NamedModule):
  """Replaced-token detection head, scope `discriminator_predictions`
  (docs/model.md#discriminator-head-and-loss).

  `dense` [H, H] trunc-normal with the config activation, then `dense_1`
  [H, 1] glorot-uniform (the original's unnamed second layer).
  """

  def __init__(self, bert_config: BertConfig, scope: str = "discriminator_predictions"):
    super().__init__(scope)
    hidden = bert_config.hidden_size
    self.dense = Dense(f"{scope}/dense", hidden, hidden,
                       modeling.truncated_normal(bert_config.initializer_range),
                       activation=modeling.get_activation(bert_config.hidden_act))
    self.dense_1 = Dense(f"{scope}/dense_1", hidden, 1, modeling.glorot_uniform())

  def __call__(self, sequence_output: tf.Tensor) -> tf.Tensor:
    """Maps [B, S, H] to float32 logits [B, S]."""
    return tf.cast(tf.squeeze(self.dense_1(self.dense(sequence_output)), -1), tf.float32)


class TwoTowerClozeTransformer(NamedModule):
  """Electric's generator: an ltr and an rtl tower on the unmasked input (docs/model.md#electric).

  The representation of position t is concat(ltr[t-1], rtl[t+1]) [B, S, 2G],
  built with a cyclic roll as the original: position 0 gets ltr[S-1] and
  position S-1 gets rtl[0] (these two see their own token).

  Args:
    generator_config: BertConfig of each tower.
    embeddings_ltr: embeddings of the ltr tower (the shared ones when tied).
    embeddings_rtl: embeddings of the rtl tower (the same object when tied).
    compute_dtype: compute dtype of both towers.
  """

  def __init__(self, generator_config: BertConfig, embeddings_ltr: Embeddings,
               embeddings_rtl: Embeddings, compute_dtype: tf.DType = tf.float32):
    super().__init__("")
    self.ltr = BertModel(generator_config, "generator_ltr", embeddings=embeddings_ltr,
                         ltr=True, compute_dtype=compute_dtype)
    self.rtl = BertModel(generator_config, "generator_rtl", embeddings=embeddings_rtl,
                         rtl=True, compute_dtype=compute_dtype)
    self.hidden_size = 2 * generator_config.hidden_size

  @property
  def embedding_table(self) -> tf.Variable:
    """The ltr tower's word-embedding table (used by the cloze head)."""
    return self.ltr.embedding_table

  def __call__(self, inputs: Inputs, training: bool,
               seed: Optional[tf.Tensor] = None) -> tf.Tensor:
    """Returns the cloze representations [B, S, 2G]."""
    ltr = self.ltr(inputs.input_ids, inputs.input_mask, inputs.segment_ids, training,
                   stateless_random.sub_seed(seed, _SEED_GENERATOR)).sequence_output
    rtl = self.rtl(inputs.input_ids, inputs.input_mask, inputs.segment_ids, training,
                   stateless_random.sub_seed(seed, _SEED_GENERATOR_RTL)).sequence_output
    # out[t] = concat(ltr[t - 1], rtl[t + 1]), cyclically (docs/model.md#electric).
    return tf.concat([tf.roll(ltr, shift=1, axis=1), tf.roll(rtl, shift=-1, axis=1)],
                     axis=-1)  # [B, S, 2G]


class PretrainingOutput(NamedTuple):
  """Everything a train step and the eval metrics need; batch-leading tensors.

  Attributes:
    total_loss: scalar, gen_weight · (cloze or MLM loss) + disc_weight · disc_loss.
    mlm_loss: scalar MLM loss at the masked positions (for Electric: of the
      cloze logits gathered there).
    cloze_loss: scalar cloze loss (two-tower generator), else None.
    disc_loss: scalar discriminator loss, None without an ELECTRA/Electric objective.
    masked_input_ids: int32 [B, S] the generator's input (most selected
      positions replaced by [MASK]).
    masked_lm_positions, masked_lm_ids: int32 [B, P]; masked_lm_weights: float32 [B, P].
    mlm_logits: float32 [B, P, V] generator logits at the masked positions.
    mlm_preds: int32 [B, P] argmax of mlm_logits.
    mlm_per_example_loss: float32 [B, P] per-slot -log p(original token).
    sampled_ids: int32 [B, P] generator samples, None without a discriminator.
    fake_input_ids: int32 [B, S] the discriminator's input, or None.
    disc_logits, disc_probs: float32 [B, S]; disc_preds, disc_labels: int32 [B, S];
    disc_per_example_loss: float32 [B] (all None without a discriminator).
    input_mask: int32 [B, S].
    cloze_logits: float32 [B, S, V] for the two-tower generator, else None.
  """
  total_loss: tf.Tensor
  mlm_loss: tf.Tensor
  cloze_loss: Optional[tf.Tensor]
  disc_loss: Optional[tf.Tensor]
  masked_input_ids: tf.Tensor
  masked_lm_positions: tf.Tensor
  masked_lm_ids: tf.Tensor
  masked_lm_weights: tf.Tensor
  mlm_logits: tf.Tensor
  mlm_preds: tf.Tensor
  mlm_per_example_loss: tf.Tensor
  sampled_ids: Optional[tf.Tensor]
  fake_input_ids: Optional[tf.Tensor]
  disc_logits: Optional[tf.Tensor]
  disc_probs: Optional[tf.Tensor]
  disc_preds: Optional[tf.Tensor]
  disc_labels: Optional[tf.Tensor]
  disc_per_example_loss: Optional[tf.Tensor]
  input_mask: tf.Tensor
  cloze_logits: Optional[tf.Tensor]


def _check_config(config: Any) -> None:
  """Rejects flag combinations the original crashes on (docs/model.md#network-selection,
  docs/model.md#electric)."""
  has_objective = config.electra_objective or config.electric_objective
  if config.electric_objective and not config.two_tower_generator:
    raise ValueError("electric_objective needs two_tower_generator "
                     "(docs/hparams.md#pre-training-presets); drop the explicit "
                     "\"two_tower_generator\": false override.")
  if config.two_tower_generator and not (
      has_objective and config.untied_generator and not config.uniform_generator):
    raise ValueError("two_tower_generator needs electra_objective or electric_objective, "
                     "untied_generator true and uniform_generator false; fix --hparams.")


class PretrainingModel(NamedModule):
  """Generator + discriminator (ELECTRA), two-tower cloze + energy model (Electric), or MLM.

  Args:
    config: a `configure_pretraining.PretrainingConfig`.
    special_ids: ids of [CLS]/[SEP]/[MASK]; None reads them from
      `config.vocab_file`.

  Attributes:
    config: the PretrainingConfig.
    bert_config: the discriminator's BertConfig (debug model applied).
    special_ids: the SpecialTokenIds used for masking.
    embeddings: the shared `electra/embeddings` module.
    discriminator: the `electra` BertModel (for MLM-only and the tied
      generator, the single encoder); None only for a uniform generator
      without an objective.
    generator: BertModel ("generator", or the `electra` one when tied / MLM),
      TwoTowerClozeTransformer (Electric), or None (uniform generator).
    generator_head: TokenPredictionsHead `generator_predictions` or
      `cloze_predictions`; None for the uniform generator.
    discriminator_head: DiscriminatorHead, None without an objective.

  Raises:
    ValueError: an invalid flag combination or model size.

  Example:
    >>> config = PretrainingConfig("tiny", "/tmp/data", vocab_size=200, embedding_size=16,
    ...                            model_hparam_overrides={"hidden_size": 32,
    ...                                                    "num_hidden_layers": 1})
    >>> model = PretrainingModel(config, SpecialTokenIds(cls_id=101, sep_id=102, mask_id=103))
    >>> ids = tf.constant([[101, 7, 8, 9, 102, 0]])
    >>> features = {"input_ids": ids, "input_mask": tf.cast(ids > 0, tf.int32),
    ...             "segment_ids": tf.zeros_like(ids)}
    >>> out = model(features, training=True, seed=tf.constant([0, 1]))
    >>> out.total_loss.shape, out.disc_logits.shape
    (TensorShape([]), TensorShape([1, 6]))
  """

  def __init__(self, config: Any, special_ids: Optional[SpecialTokenIds] = None):
    super().__init__("")
    _check_config(config)
    self.config = config
    self.special_ids = special_ids or SpecialTokenIds.from_vocab_file(config.vocab_file)
    self.bert_config = sizes.get_model_bert_config(config)
    if config.mixed_precision not in _COMPUTE_DTYPES:
      raise ValueError(f"mixed_precision must be one of {sorted(_COMPUTE_DTYPES)}, "
                       f"got {config.mixed_precision!r}.")
    dtype = _COMPUTE_DTYPES[config.mixed_precision]
    embedding_size = config.embedding_size or self.bert_config.hidden_size
    self.has_discriminator = bool(config.electra_objective or config.electric_objective)
    self.embeddings = Embeddings(self.bert_config, embedding_size, "electra/embeddings")
    self.generator = self._build_generator(dtype)
    self.discriminator = None
    if self.has_discriminator and (config.untied_generator or config.uniform_generator):
      self.discriminator = BertModel(self.bert_config, "electra", embeddings=self.embeddings,
                                     compute_dtype=dtype)
    elif not config.uniform_generator:
      self.discriminator = self.generator  # Tied generator, or BERT-style MLM.
    if self.generator is None:
      self.generator_head = None
    elif config.two_tower_generator:
      self.generator_head = TokenPredictionsHead(
          self.bert_config, self.generator.hidden_size, self.generator.embedding_table,
          "cloze_predictions")
    else:
      self.generator_head = TokenPredictionsHead(
          self.bert_config, self.generator.config.hidden_size,
          self.generator.embedding_table, "generator_predictions")
    self.discriminator_head = (DiscriminatorHead(self.bert_config)
                               if self.has_discriminator else None)

  def _build_generator(self, dtype: tf.DType):
    """The generator network of docs/model.md#network-selection (None for the uniform generator)."""
    config = self.config
    if config.uniform_generator:
      return None
    if not (self.has_discriminator and config.untied_generator):
      return BertModel(self.bert_config, "electra", embeddings=self.embeddings,
                       compute_dtype=dtype)
    gen_config = sizes.get_generator_config(config, self.bert_config)
    if config.two_tower_generator:
      if config.untied_generator_embeddings:
        ltr, rtl = (Embeddings(gen_config, scope=f"{scope}/embeddings")
                    for scope in ("generator_ltr", "generator_rtl"))
      else:
        ltr = rtl = self.embeddings
      return TwoTowerClozeTransformer(gen_config, ltr, rtl, dtype)
    embeddings = (Embeddings(gen_config, scope="generator/embeddings")
                  if config.untied_generator_embeddings else self.embeddings)
    return BertModel(gen_config, "generator", embeddings=embeddings, compute_dtype=dtype)

  def __call__(self, features: Dict[str, tf.Tensor], training: bool,
               seed: Optional[tf.Tensor] = None) -> PretrainingOutput:
    """Masks, runs generator and discriminator, and computes the losses.

    Args:
      features: "input_ids", "input_mask", "segment_ids", int32 [B, S].
      training: dropout on (the original's TRAIN mode) or off (EVAL).
      seed: int Tensor [2] driving masking, sampling and dropout. None draws
        a fresh random seed (ad-hoc use; the trainers always pass one).

    Returns:
      PretrainingOutput.
    """
    if seed is None:
      seed = tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int32)
    dropout_seed = seed if training else None
    unmasked = features_to_inputs(features)
    masked = pretrain_helpers.mask(
        unmasked, self.config.mask_prob, self.config.max_predictions_per_seq,
        self.special_ids, stateless_random.sub_seed(seed, _SEED_MASK))

    cloze = None
    if self.config.uniform_generator:
      # All-zero logits [B, P, V]: uniform sampling over the vocabulary. Built
      # from an input so XLA does not constant-fold the loss over them.
      zero_logits = tf.broadcast_to(
          0.0 * masked.masked_lm_weights[:, :, None],
          tf.concat([tf.shape(masked.masked_lm_ids), [self.bert_config.vocab_size]], 0))
      mlm = get_softmax_output(zero_logits, masked.masked_lm_ids, masked.masked_lm_weights)
    elif self.config.two_tower_generator:
      cloze = self._cloze_output(unmasked, training, dropout_seed)
      mlm = get_softmax_output(
          pretrain_helpers.gather_positions(cloze.logits, masked.masked_lm_positions),
          masked.masked_lm_ids, masked.masked_lm_weights)  # [B, P, V]
    else:
      gen_out = self.generator(masked.input_ids, masked.input_mask, masked.segment_ids,
                               training, stateless_random.sub_seed(dropout_seed, _SEED_GENERATOR))
      reprs = pretrain_helpers.gather_positions(gen_out.sequence_output,
                                                masked.masked_lm_positions)  # [B, P, G]
      mlm = get_softmax_output(self.generator_head(reprs), masked.masked_lm_ids,
                               masked.masked_lm_weights)
    gen_loss = cloze.loss if cloze is not None else mlm.loss
    total_loss = self.config.gen_weight * gen_loss

    disc = {name: None for name in ("sampled_ids", "fake_input_ids", "disc_logits",
                                    "disc_probs", "disc_preds", "disc_labels",
                                    "disc_per_example_loss", "disc_loss")}
    if self.has_discriminator:
      disc = self._discriminator_output(masked, mlm, cloze, training, seed)
      total_loss += self.config.disc_weight * disc["disc_loss"]
    return PretrainingOutput(
        total_loss=total_loss, mlm_loss=mlm.loss,
        cloze_loss=None if cloze is None else cloze.loss,
        masked_input_ids=masked.input_ids, masked_lm_positions=masked.masked_lm_positions,
        masked_lm_ids=masked.masked_lm_ids, masked_lm_weights=masked.masked_lm_weights,
        mlm_logits=mlm.logits, mlm_preds=mlm.preds,
        mlm_per_example_loss=mlm.per_example_loss, input_mask=unmasked.input_mask,
        cloze_logits=None if cloze is None else cloze.logits, **disc)

  def _cloze_output(self, unmasked: Inputs, training: bool,
                    seed: Optional[tf.Tensor]) -> SoftmaxOutput:
    """Cloze logits [B, S, V] over all positions and the cloze loss (docs/model.md#electric)."""
    reprs = self.generator(unmasked, training, seed)  # [B, S, 2G]
    weights = tf.cast(pretrain_helpers.get_candidates_mask(unmasked, self.special_ids),
                      tf.float32)  # [B, S]
    return get_softmax_output(self.generator_head(reprs), unmasked.input_ids, weights)

  def _discriminator_output(self, masked: Inputs, mlm: SoftmaxOutput,
                            cloze: Optional[SoftmaxOutput], training: bool,
                            seed: tf.Tensor) -> Dict[str, tf.Tensor]:
    """Samples fake tokens (docs/model.md#sampling-replacements) and runs the
    discriminator (docs/model.md#discriminator-head-and-loss, docs/model.md#electric)."""
    config = self.config
    original = pretrain_helpers.unmask(masked)
    sampled_ids = pretrain_helpers.sample_from_softmax(
        mlm.logits, stateless_random.sub_seed(seed, _SEED_SAMPLE), config.temperature,
        original.masked_lm_ids if config.disallow_correct else None,
        exp_weights=mlm.exp_weights)  # [B, P]
    fake_ids, updated_mask = pretrain_helpers.scatter_update(
        original.input_ids, tf.cast(sampled_ids, original.input_ids.dtype),
        original.masked_lm_positions)  # [B, S]
    if config.electric_objective:
      labels = updated_mask  # Every selected position is noise
      # (docs/model.md#sampling-replacements).
    else:
      # A sample equal to the original token is labelled real.
      labels = updated_mask * tf.cast(tf.not_equal(fake_ids, original.input_ids), tf.int32)
    fake = get_updated_inputs(original, input_ids=fake_ids)
    dropout_seed = stateless_random.sub_seed(seed, _SEED_DISCRIMINATOR) if training else None
    disc_out = self.discriminator(fake.input_ids, fake.input_mask, fake.segment_ids,
                                  training, dropout_seed)
    logits = self.discriminator_head(disc_out.sequence_output)  # [B, S]
    if config.electric_objective:
      # log q(x̃_t | x_\t) from the cloze logits of the ORIGINAL sequence, stop-gradient.
      log_q = (tf.gather(cloze.logits, fake_ids, axis=2, batch_dims=2)
               - tf.reduce_logsumexp(cloze.logits, axis=-1))  # [B, S]
      logits += tf.stop_gradient(log_q)
      logits += math.log(config.mask_prob / (1.0 - config.mask_prob))
    weights = tf.cast(fake.input_mask, tf.float32)
    losses = tf.nn.sigmoid_cross_entropy_with_logits(
        labels=tf.cast(labels, tf.float32), logits=logits) * weights  # [B, S]
    return {
        "sampled_ids": sampled_ids,
        "fake_input_ids": fake_ids,
        "disc_logits": logits,
        "disc_probs": tf.sigmoid(logits),
        "disc_preds": tf.cast(logits > 0, tf.int32),  # z == 0 -> 0, as the original.
        "disc_labels": labels,
        "disc_per_example_loss": (tf.reduce_sum(losses, -1)
                                  / (1e-6 + tf.reduce_sum(weights, -1))),
        "disc_loss": tf.reduce_sum(losses) / (1e-6 + tf.reduce_sum(weights)),
    }
