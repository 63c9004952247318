"""Fine-tuning throughput: train steps, prediction and QA post-processing.

    python3 bench/finetune.py [--model-size small] [--configs sst:128 squad:384 squad:512]
        [--batch 32] [--steps 20] [--dtype fp32|bf16|fp16] [--xla] [--threads N]
        [--grad-accumulation-steps K] [--warmup 2] [--peak-flops F]
        [--skip-train] [--skip-predict] [--skip-postprocessing] [--serving]
        [--serving-xla] [--fused-inference auto|on|off]

For each `task:seq` configuration it builds the fine-tuning model exactly as
`run_finetuning.py` does (`FinetuningModel` with the task's head, the
fine-tuning optimizer with layer-wise decay, `training.trainer.Trainer` with the
summed loss) and feeds synthetic full-length batches (random word ids, every
position real, labels / answer positions 0). It prints one JSON line per
measurement:

* `phase: "train"`: `Trainer.train_steps`, the loop `Trainer.train` runs
  between log lines (forward, backward, clipping, Adam with layer-wise
  learning rates; no checkpoint);
* `phase: "predict"`: `ModelRunner.predict_batch` (eval-mode forward pass and
  the copy of every output to numpy, as evaluation does);
* `phase: "serving"` (with `--serving`): the exported SavedModel's
  `serving_default` signature (what TF Serving or `tf.saved_model.load` runs:
  `export_model.py`'s graph, written and loaded back, random weights) on
  int32 numpy inputs, outputs copied to numpy;
* `phase: "qa_postprocessing"` (with a QA configuration): `SpanBasedQAScorer`
  turning raw head outputs into answer texts (`write_predictions`, which
  re-featurizes each example) for the real SQuAD 1.1 slice in tests/data/qa;
  `examples_per_sec` counts questions, `ms_per_example` is its inverse.

`--grad-accumulation-steps K` trains the global `--batch` in K micro-batches
(the memory recipe for big models); `peak_memory_mb` is then the peak of a
whole step made of micro-batches of `--batch / K` examples. On CPU, run with `TF_CPU_ALLOCATOR_USE_BFC=true` to get
the allocator's peak (GPU-style accounting) instead of the resident memory.
ELECTRA-Large SQuAD at seq 512 on a 16 GB GPU (micro-batch 2; measured with
the CPU BFC allocator: 10.1 GB peak):

    python3 bench/finetune.py --model-size large --configs squad:512 --batch 32 \
        --grad-accumulation-steps 16 --dtype bf16 --xla --steps 5 --skip-predict \
        --skip-postprocessing

`mfu` divides the model FLOPs by the matmul peak of bench/peak.py; FLOPs use
the original's formula (flops_computation.py: backward = forward, the paper's
convention), so they are comparable with the pre-training benchmark.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from typing import Callable, Dict, List, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench import common, peak  # noqa: E402
from configure_finetuning import FinetuningConfig  # noqa: E402
from finetune import finetuning_model, model_runner, preprocessing, task_builder  # noqa: E402
from model import checkpointing  # noqa: E402
from model.flops import TransformerHparams  # noqa: E402
from model.optimization import create_finetuning_optimizer  # noqa: E402
from training import trainer as trainer_lib  # noqa: E402
from util import files  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB = os.path.join(REPO_ROOT, "data", "vocab", "uncased_vocab.txt")
SQUAD_SLICE = os.path.join(REPO_ROOT, "tests", "data", "qa", "squadv1_dev_slice.json")
MIXED_PRECISION = {"fp32": "off", "bf16": "bf16", "fp16": "fp16"}


def make_config(data_dir: str, task_name: str, seq: int, args: argparse.Namespace,
                **overrides) -> FinetuningConfig:
  hparams = dict(task_names=[task_name], model_size=args.model_size, max_seq_length=seq,
                 train_batch_size=args.batch, eval_batch_size=args.batch,
                 predict_batch_size=args.batch, vocab_file=VOCAB, init_checkpoint=None,
                 use_xla=args.xla, mixed_precision=MIXED_PRECISION[args.dtype], seed=1,
                 do_eval=False, grad_accumulation_steps=args.grad_accumulation_steps)
  hparams.update(overrides)
  return FinetuningConfig("bench", data_dir, **hparams)


def synthetic_batch(config, tasks, batch: int) -> Dict[str, tf.Tensor]:
  """A full-length batch of every feature: random ids, all-real mask, zero labels."""
  rng = np.random.default_rng(0)
  seq = config.max_seq_length
  features = {}
  for spec in preprocessing.Preprocessor(config, tasks).feature_specs:
    shape = [batch] + list(spec.shape)
    if spec.name == "input_ids":
      value = rng.integers(1000, config.vocab_size, size=shape)
    elif spec.name == "input_mask":
      value = np.ones(shape)
    elif spec.name == "segment_ids":
      value = np.broadcast_to(np.arange(seq) >= seq // 4, shape)
    elif spec.name.endswith("_eid"):
      value = np.arange(batch)
    else:
      value = np.zeros(shape)
    features[spec.name] = tf.constant(value, tf.int32 if spec.is_int_feature else tf.float32)
  return features


def flops_per_example(bert_config, embedding_size: int, seq: int) -> Dict[str, float]:
  """Train and inference FLOPs of one example (original formula, classification head)."""
  hparams = TransformerHparams(h=bert_config.hidden_size, l=bert_config.num_hidden_layers,
                               s=seq, v=bert_config.vocab_size, e=embedding_size,
                               i=bert_config.intermediate_size,
                               heads=bert_config.num_attention_heads)
  return {"train": hparams.get_train_flops(1, 1, discriminator=True),
          "predict": hparams.get_infer_flops()}


def record(args, phase: str, task: str, batch, seq, examples_per_sec: float,
           flops: float = None, **extra) -> dict:
  result = dict(device=common.describe_device(), dtype=args.dtype, xla=args.xla, batch=batch,
                seq=seq, phase=phase, task=task, model_size=args.model_size,
                examples_per_sec=examples_per_sec,
                tokens_per_sec=examples_per_sec * seq if flops is not None else None, mfu=None,
                peak_memory_mb=common.peak_memory_mb(), command=common.command_line())
  if flops is not None:
    result["mfu"] = flops * examples_per_sec / (args.peak_flops or peak.peak_flops(args.dtype))
    result["model_flops_per_example"] = flops
  result.update(extra)
  return result


def bench_train(args, work_dir: str, task_name: str, seq: int) -> dict:
  """Examples/s of `Trainer.train_steps` (the fine-tuning step) on a repeated synthetic batch."""
  config = make_config(work_dir, task_name, seq, args, do_train=True)
  tasks = task_builder.get_tasks(config)
  warmup, steps = args.warmup, args.steps
  with trainer_lib.strategy_scope(None):
    model = finetuning_model.FinetuningModel(
        config, tasks, compute_dtype=trainer_lib.compute_dtype(config.mixed_precision))
    optimizer = create_finetuning_optimizer(
        config, model.trainable_named_variables(), warmup + steps,
        model.bert_config.num_hidden_layers)
  settings = model_runner.make_train_settings(
      config, os.path.join(work_dir, "unused"), warmup + steps, seed=1)
  trainer = trainer_lib.Trainer(model, optimizer, model_runner.make_loss_fn(model), settings)
  iterator = iter(tf.data.Dataset.from_tensors(
      synthetic_batch(config, tasks, args.batch)).repeat())
  start = time.perf_counter()
  float(trainer.train_steps(iterator, warmup)["loss"])  # traces, then warms up
  compile_seconds = time.perf_counter() - start
  start = time.perf_counter()
  loss = float(trainer.train_steps(iterator, steps)["loss"])
  seconds = time.perf_counter() - start
  flops = flops_per_example(model.bert_config, config.embedding_size, seq)["train"]
  return record(args, "train", task_name, args.batch, seq, steps * args.batch / seconds,
                flops, steps=steps, last_loss=loss, compile_s=compile_seconds,
                grad_accumulation_steps=args.grad_accumulation_steps,
                micro_batch=args.batch // args.grad_accumulation_steps)


def time_calls(call: Callable[[], object], steps: int) -> Tuple[float, float]:
  """(seconds of the first call: tracing/compiling; seconds of `steps` calls after one more)."""
  start = time.perf_counter()
  call()
  first_call_seconds = time.perf_counter() - start
  call()
  start = time.perf_counter()
  for _ in range(steps):
    call()
  return first_call_seconds, time.perf_counter() - start


def bench_predict(args, work_dir: str, task_name: str, seq: int) -> dict:
  """Examples/s of `ModelRunner.predict_batch` (forward pass + outputs to numpy)."""
  config = make_config(work_dir, task_name, seq, args, do_train=False)
  tasks = task_builder.get_tasks(config)
  runner = model_runner.ModelRunner(config, tasks, os.path.join(work_dir, "predict"))
  if args.fused_inference != "auto":
    runner.fused_inference = args.fused_inference == "on"
  batch = synthetic_batch(config, tasks, args.batch)
  compile_seconds, seconds = time_calls(lambda: runner.predict_batch(batch), args.steps)
  flops = flops_per_example(runner.model.bert_config, config.embedding_size, seq)["predict"]
  return record(args, "predict", task_name, args.batch, seq, args.steps * args.batch / seconds,
                flops, steps=args.steps, compile_s=compile_seconds,
                xla=model_runner.xla_for_prediction(config),
                fused_inference=runner.fused_inference)


def bench_serving(args, work_dir: str, task_name: str, seq: int) -> dict:
  """Examples/s of the exported SavedModel's `serving_default` (random weights)."""
  from export import saved_model  # pylint: disable=import-outside-toplevel
  config = make_config(work_dir, task_name, seq, args, do_train=False)
  tasks = task_builder.get_tasks(config)
  model = finetuning_model.FinetuningModel(
      config, tasks, compute_dtype=trainer_lib.compute_dtype(config.mixed_precision))
  prefix = checkpointing.save_checkpoint(os.path.join(work_dir, "serving_ckpt"), 0,
                                        model.named_variables())
  plan = saved_model.ExportPlan(
      saved_model._finetuned_forward(model, tasks), [model],  # pylint: disable=protected-access
      model.named_variables(), prefix, model.bert_config, {}, None, {}, "")
  export_dir = saved_model.write_saved_model(plan, os.path.join(work_dir, "saved_model"),
                                             xla=args.serving_xla)
  serve = tf.saved_model.load(export_dir).signatures[saved_model.SIGNATURE_KEY]
  batch = synthetic_batch(config, tasks, args.batch)
  inputs = {name: batch[name].numpy() for name in saved_model.INPUT_NAMES}

  def call():
    return {key: value.numpy() for key, value in serve(**{
        name: tf.constant(value) for name, value in inputs.items()}).items()}
  compile_seconds, seconds = time_calls(call, args.steps)
  flops = flops_per_example(model.bert_config, config.embedding_size, seq)["predict"]
  return record(args, "serving", task_name, args.batch, seq, args.steps * args.batch / seconds,
                flops, steps=args.steps, compile_s=compile_seconds)


def bench_qa_postprocessing(args, work_dir: str, seq: int) -> dict:
  """Questions/s of SQuAD post-processing on head outputs of a small random model."""
  data_dir = os.path.join(work_dir, "qa_data")
  os.makedirs(os.path.join(data_dir, "finetuning_data", "squadv1"), exist_ok=True)
  shutil.copy(SQUAD_SLICE, os.path.join(data_dir, "finetuning_data", "squadv1", "dev.json"))
  # The outputs' shapes (seq, beam) matter, not the encoder: a tiny one feeds the scorer.
  config = make_config(data_dir, "squadv1", seq, args, do_train=False, mixed_precision="off",
                       model_hparam_overrides={"hidden_size": 64, "num_hidden_layers": 1})
  tasks = task_builder.get_tasks(config)
  runner = model_runner.ModelRunner(config, tasks, os.path.join(work_dir, "qa_model"))
  outputs = [out for _, out in runner.predict(tasks, "dev")]
  n_questions = len(tasks[0].get_examples("dev"))
  timings = []
  for _ in range(3):
    scorer = tasks[0].get_scorer("dev")
    start = time.perf_counter()
    for out in outputs:
      scorer.update(out)
    scorer.write_predictions()
    timings.append(time.perf_counter() - start)
  seconds = min(timings)
  return record(args, "qa_postprocessing", "squadv1", None, seq, n_questions / seconds,
                ms_per_example=1000.0 * seconds / n_questions, n_questions=n_questions,
                n_windows=len(outputs), n_best_size=config.n_best_size,
                beam_size=config.beam_size)


def main(argv: List[str] = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--model-size", default="small", choices=["small", "base", "large"])
  parser.add_argument("--configs", nargs="+", default=["sst:128", "squad:384", "squad:512"],
                      help="task:max_seq_length pairs")
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
  parser.add_argument("--dtype", choices=sorted(MIXED_PRECISION), default="fp32")
  parser.add_argument("--xla", action="store_true")
  parser.add_argument("--threads", type=int, default=None)
  parser.add_argument("--grad-accumulation-steps", type=int, default=1,
                      help="micro-batches per training step (must divide --batch)")
  parser.add_argument("--warmup", type=int, default=2,
                      help="untimed training steps (the first call traces; timed as compile_s)")
  parser.add_argument("--peak-flops", type=float, default=None,
                      help="MFU denominator (default: bench/peak.py measured in-process)")
  parser.add_argument("--skip-train", action="store_true")
  parser.add_argument("--skip-predict", action="store_true")
  parser.add_argument("--skip-postprocessing", action="store_true")
  parser.add_argument("--serving", action="store_true",
                      help="also time the exported SavedModel's serving_default")
  parser.add_argument("--fused-inference", choices=["auto", "on", "off"], default="auto",
                      help="predict phase: XLA kernels between the matmuls "
                           "(modeling.fused_inference; auto: as run_finetuning.py, on for "
                           "bf16/fp16 without whole-graph XLA)")
  parser.add_argument("--serving-xla", action="store_true",
                      help="export the serving forward pass XLA-compiled (export_model.py --xla)")
  args = parser.parse_args(argv)
  if args.grad_accumulation_steps < 1 or args.batch % args.grad_accumulation_steps:
    parser.error(f"--grad-accumulation-steps {args.grad_accumulation_steps} must be >= 1 and "
                 f"divide --batch {args.batch}")
  common.set_threads(args.threads)
  work_dir = tempfile.mkdtemp(prefix="bench_finetune_")
  try:
    qa_seqs = []
    for item in args.configs:
      task_name, seq = item.split(":")
      if not args.skip_train:
        common.emit(bench_train(args, work_dir, task_name, int(seq)))
      if not args.skip_predict:
        common.emit(bench_predict(args, work_dir, task_name, int(seq)))
      if args.serving:
        common.emit(bench_serving(args, work_dir, task_name, int(seq)))
      if task_name in task_builder.QA_TASKS:
        qa_seqs.append(int(seq))
    if qa_seqs and not args.skip_postprocessing:
      common.emit(bench_qa_postprocessing(args, work_dir, qa_seqs[0]))
  finally:
    files.rmrf(work_dir)


if __name__ == "__main__":
  main()
