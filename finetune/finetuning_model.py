"""The fine-tuning model: one shared ELECTRA encoder plus one head per task.

See docs/finetuning.md#the-fine-tuning-model, docs/finetuning.md#multi-task-batches,
docs/checkpoints.md#fine-tuning-variables. The encoder is a `BertModel` in scope `electra`
(embeddings `electra/embeddings`, `electra/embeddings_project` when E != H), so the discriminator of
a pre-trained checkpoint loads by name; each task adds a `TaskHead` under `task_specific/<task>/`.

Loss (faithful): the **sum over the batch** of every task's per-example
losses, each masked by `one_hot(task_id, n_tasks)`, so a row only trains the
head of its own task and padding rows (`task_id = n_tasks`) contribute 0.

Letters: B batch, S max_seq_length, H hidden size, T number of tasks.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import tensorflow as tf

from finetune import task as task_lib
from model import modeling, sizes, stateless_random


class FinetuningModel(modeling.NamedModule):
  """Encoder + task heads; `__call__` returns the summed loss and flat outputs.

  Args:
    config: the `FinetuningConfig` (uses `task_names` order implicitly via the
      tasks, `embedding_size`, `max_seq_length`, and the size hparams /
      `debug` through `sizes.get_model_bert_config`).
    tasks: the tasks, in `config.task_names` order (`task_id` = index).
    bert_config: optional `BertConfig`; default `get_model_bert_config(config)`
      (the debug model when `config.debug`).
    compute_dtype: float32, bfloat16 or float16 encoder compute dtype.

  Raises:
    ValueError: `max_seq_length` exceeds `max_position_embeddings`, or the
      tasks are not in `config.task_names` order.

  Example:
    >>> tasks = task_builder.get_tasks(config)
    >>> model = FinetuningModel(config, tasks)
    >>> loss, outputs = model(features, training=True, seed=tf.constant([1, 2]))
    >>> sorted(model.named_variables())[-2:]
    ['task_specific/rte/dense/bias', 'task_specific/rte/dense/kernel']
  """

  def __init__(self, config, tasks: Sequence[task_lib.Task],
               bert_config: Optional[modeling.BertConfig] = None,
               compute_dtype: tf.DType = tf.float32):
    super().__init__("")
    if [task.name for task in tasks] != list(config.task_names):
      raise ValueError(f"Tasks {[task.name for task in tasks]} must match task_names "
                       f"{list(config.task_names)} in order (task_id is the index).")
    if bert_config is None:
      bert_config = sizes.get_model_bert_config(config)
    if config.max_seq_length > bert_config.max_position_embeddings:
      raise ValueError(f"max_seq_length ({config.max_seq_length}) exceeds the model's "
                       f"max_position_embeddings ({bert_config.max_position_embeddings}); "
                       "lower max_seq_length.")
    self.bert_config = bert_config
    self.task_names = [task.name for task in tasks]
    with self.name_scope:
      self.encoder = modeling.BertModel(bert_config, scope="electra",
                                        embedding_size=config.embedding_size,
                                        compute_dtype=compute_dtype)
      self.heads = [task.create_head(bert_config.hidden_size) for task in tasks]

  def __call__(self, features: Dict[str, tf.Tensor], training: bool,
               seed: Optional[tf.Tensor] = None
               ) -> Tuple[tf.Tensor, Dict[str, tf.Tensor]]:
    """Runs the encoder and every head on a multi-task batch.

    Args:
      features: dict of batched features from `Preprocessor.make_dataset`:
        `input_ids`, `input_mask`, `segment_ids` int32 [B, S], `task_id`
        int32 [B], plus every task's features.
      training: bool. Enables dropout.
      seed: optional int [2] stateless seed; the encoder uses
        `fold_in(seed, 0)` and head t uses `fold_in(seed, t + 1)`.

    Returns:
      (loss, outputs): float32 scalar batch-sum loss, and a flat dict with
      `task_id` [B] and `<task>_<key>` for every head output.
    """
    bert_output = self.encoder(features["input_ids"], features["input_mask"],
                               features["segment_ids"], training,
                               stateless_random.sub_seed(seed, 0))
    task_id = features["task_id"]  # [B]
    task_mask = tf.one_hot(task_id, depth=len(self.heads), dtype=tf.float32)  # [B, T]
    total_loss = tf.constant(0.0, tf.float32)
    outputs = {"task_id": task_id}
    for t, (name, head) in enumerate(zip(self.task_names, self.heads)):
      losses, head_outputs = head(bert_output, features, training,
                                  stateless_random.sub_seed(seed, t + 1))
      total_loss += tf.reduce_sum(tf.cast(losses, tf.float32) * task_mask[:, t])
      for key, value in head_outputs.items():
        outputs[f"{name}_{key}"] = value
    return total_loss, outputs
