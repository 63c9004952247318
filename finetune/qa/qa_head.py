"""The span-QA head (docs/finetuning.md#qa-head, docs/checkpoints.md#fine-tuning-variables variable
names).

Letters: B batch, L max_seq_length, H hidden size, K beam_size, Q = 512
(hidden size of the end and answerability MLPs).

Quirks reproduced (docs/finetuning.md#quirks-and-fixes): the allowed answer positions are the
context tokens, the final [SEP] and [CLS]; under joint prediction the
returned `end_logits` are zeros at inference (the loss then uses them); the
answerability classifier is built whenever `answerable_classifier` is on,
also for SQuAD 1.1 and MRQA.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import tensorflow as tf

from finetune import task
from model.modeling import Dense, gelu

QA_HIDDEN_SIZE = 512    # docs/finetuning.md#qa-head
_MASK_PENALTY = 1000.0  # logits += 1000 · (answer_mask - 1)


def _positions_cross_entropy(logits: tf.Tensor, positions: tf.Tensor) -> tf.Tensor:
  """-log softmax(logits)[position]: logits [B, L], positions int [B] -> [B]."""
  log_probs = tf.nn.log_softmax(logits, axis=-1)
  one_hot = tf.one_hot(positions, depth=tf.shape(logits)[-1], dtype=logits.dtype)
  return -tf.reduce_sum(one_hot * log_probs, axis=-1)


class QAHead(task.TaskHead):
  """Start/end span head with an answerability classifier (docs/finetuning.md#qa-head).

  Variables under `task_specific/<task>/` (docs/checkpoints.md#fine-tuning-variables): `dense` [H,
  1] start; joint: `qa_hidden` [2H, 512] and `dense_1` [512, 1] end; non-joint:
  `dense_1` [H, 1] end; answerable classifier: `dense_2` [2H, 512] and
  `dense_3` [512, 1], or `dense_2` [H, 1] without start logits.

  The joint end MLP is evaluated as `gelu(h_s·W_s + h_t·W_t + b)` with
  `W = [W_s; W_t]` the two halves of `qa_hidden/kernel`: equal to the
  original's `dense(concat(h_s, h_t))` without materializing [B, K, L, 2H].
  The head computes in float32 (sequence_output is cast).

  Args:
    task_name: str.
    hidden_size: int. H.
    joint_prediction: bool. End conditioned on the start (beam search at inference).
    beam_size: int. K, top starts and ends.
    answerable_classifier: bool.
    answerable_uses_start_logits: bool. Attend with the start probabilities.
    answerable_weight: float. Weight of the answerability BCE.
  """

  def __init__(self, task_name: str, hidden_size: int, joint_prediction: bool = True,
               beam_size: int = 20, answerable_classifier: bool = True,
               answerable_uses_start_logits: bool = True, answerable_weight: float = 0.5):
    super().__init__(task_name)
    self.hidden_size = hidden_size
    self.joint_prediction = joint_prediction
    self.beam_size = beam_size
    self.answerable_classifier = answerable_classifier
    self.answerable_uses_start_logits = answerable_uses_start_logits
    self.answerable_weight = answerable_weight
    with self.name_scope:
      self.start_dense = Dense(self.scope + "/dense", hidden_size, 1)
      if joint_prediction:
        self.qa_hidden = Dense(self.scope + "/qa_hidden", 2 * hidden_size, QA_HIDDEN_SIZE)
        self.end_dense = Dense(self.scope + "/dense_1", QA_HIDDEN_SIZE, 1)
      else:
        self.end_dense = Dense(self.scope + "/dense_1", hidden_size, 1)
      if answerable_classifier and answerable_uses_start_logits:
        self.answerable_hidden = Dense(self.scope + "/dense_2", 2 * hidden_size,
                                       QA_HIDDEN_SIZE, activation=gelu)
        self.answerable_dense = Dense(self.scope + "/dense_3", QA_HIDDEN_SIZE, 1)
      elif answerable_classifier:
        self.answerable_dense = Dense(self.scope + "/dense_2", hidden_size, 1)

  def _joint_end_logits(self, start_hidden: tf.Tensor, sequence: tf.Tensor) -> tf.Tensor:
    """dense_1(gelu(qa_hidden(concat(h_s, h_t)))): start_hidden [B, ..., H] -> [B, ..., L].

    start_hidden is [B, H] (training) or [B, K, H] (inference).
    """
    kernel = self.qa_hidden.kernel  # [2H, Q]
    from_start = tf.matmul(start_hidden, kernel[:self.hidden_size])  # [B, (K,) Q]
    from_end = tf.einsum("blh,hq->blq", sequence, kernel[self.hidden_size:])  # [B, L, Q]
    if start_hidden.shape.rank == 3:
      hidden = from_start[:, :, None, :] + from_end[:, None, :, :]  # [B, K, L, Q]
    else:
      hidden = from_start[:, None, :] + from_end  # [B, L, Q]
    hidden = gelu(tf.nn.bias_add(hidden, self.qa_hidden.bias))
    return tf.squeeze(self.end_dense(hidden), -1)  # [B, (K,) L]

  def __call__(self, bert_output, features: Dict[str, tf.Tensor], training: bool,
               seed: Optional[tf.Tensor] = None) -> Tuple[tf.Tensor, Dict[str, tf.Tensor]]:
    del seed  # No dropout in this head.
    name = self.task_name
    sequence = tf.cast(bert_output.sequence_output, tf.float32)  # [B, L, H]
    batch_size = tf.shape(sequence)[0]
    k = self.beam_size
    # Context tokens, the final [SEP] and [CLS] (position 0) may be answers.
    answer_mask = (tf.cast(features["input_mask"], tf.float32)
                   * tf.cast(features["segment_ids"], tf.float32))
    answer_mask += tf.one_hot(0, tf.shape(answer_mask)[1])  # [B, L]
    penalty = _MASK_PENALTY * (answer_mask - 1.0)
    start_positions = tf.cast(features[name + "_start_positions"], tf.int32)
    end_positions = tf.cast(features[name + "_end_positions"], tf.int32)

    start_logits = tf.squeeze(self.start_dense(sequence), -1) + penalty  # [B, L]
    start_top_log_probs = tf.zeros([batch_size, k])
    start_top_index = tf.zeros([batch_size, k], tf.int32)
    end_top_log_probs = tf.zeros([batch_size, k, k])
    end_top_index = tf.zeros([batch_size, k, k], tf.int32)
    if self.joint_prediction:
      start_top_log_probs, start_top_index = tf.nn.top_k(
          tf.nn.log_softmax(start_logits), k=k)  # [B, K]
      if training:  # Teacher forcing: condition on the gold start.
        start_hidden = tf.gather(sequence, start_positions, batch_dims=1)  # [B, H]
        end_logits = self._joint_end_logits(start_hidden, sequence) + penalty  # [B, L]
      else:
        start_hidden = tf.gather(sequence, start_top_index, batch_dims=1)  # [B, K, H]
        end_logits = (self._joint_end_logits(start_hidden, sequence)
                      + penalty[:, None, :])  # [B, K, L]
        end_top_log_probs, end_top_index = tf.nn.top_k(
            tf.nn.log_softmax(end_logits), k=k)  # [B, K, K]
        end_logits = tf.zeros_like(start_logits)  # as the original: zeros at inference
    else:
      end_logits = tf.squeeze(self.end_dense(sequence), -1) + penalty  # [B, L]

    losses = (_positions_cross_entropy(start_logits, start_positions)
              + _positions_cross_entropy(end_logits, end_positions)) / 2.0
    answerable_logit = tf.zeros([batch_size])
    if self.answerable_classifier:
      answerable_logit = self._answerable_logit(sequence, start_logits)
      is_impossible = tf.cast(features[name + "_is_impossible"], tf.float32)
      losses += self.answerable_weight * tf.nn.sigmoid_cross_entropy_with_logits(
          labels=is_impossible, logits=answerable_logit)

    return losses, dict(
        loss=losses, start_logits=start_logits, end_logits=end_logits,
        answerable_logit=answerable_logit, start_positions=start_positions,
        end_positions=end_positions, start_top_log_probs=start_top_log_probs,
        start_top_index=start_top_index, end_top_log_probs=end_top_log_probs,
        end_top_index=end_top_index, eid=features[name + "_eid"])

  def _answerable_logit(self, sequence: tf.Tensor, start_logits: tf.Tensor) -> tf.Tensor:
    """[B]: high means unanswerable. [CLS] (+ start-probability-weighted hidden) -> MLP."""
    representation = sequence[:, 0]  # [B, H]
    if self.answerable_uses_start_logits:
      start_probs = tf.nn.softmax(start_logits)  # [B, L]
      attended = tf.einsum("bl,blh->bh", start_probs, sequence)  # [B, H]
      representation = self.answerable_hidden(tf.concat([representation, attended], -1))
    return tf.squeeze(self.answerable_dense(representation), -1)
