"""Pre-training throughput of the full ELECTRA training step.

    python3 bench/pretrain.py [--model-size small|base|large] [--batch-size 32 8]
        [--seq-len 128] [--steps 20] [--warmup 3] [--xla | --no-xla] [--both-xla]
        [--dtype fp32|bf16|fp16] [--threads N] [--generator-hidden-size F]
        [--iterations-per-loop K] [--data "<tfrecord glob>"] [--in-process]
        [--peak-flops F]

Each configuration builds the pre-training model exactly as `run_pretraining.py`
does (the `PretrainingConfig` defaults of `--model-size`, e.g. Small: hidden
256, 12 layers, embedding 128, generator 1/4 size; only the batch size,
sequence length, precision, XLA and the generator size are set from the flags)
and times `Trainer.train_steps`, the loop that `Trainer.train` runs between log
lines: masking, generator forward, Gumbel sampling, discriminator forward,
backward through both, global-norm clipping and the Adam update, with
`--iterations-per-loop` steps per `tf.function` call (one host sync per call).

Input: by default synthetic batches (16 distinct batches repeated: uniformly
random word-piece ids, `[CLS]` first, `[SEP]` in the middle and at the end,
segment 0 then 1, no padding), so no data has to be built; with `--data` the
real tfrecords through the pre-training input pipeline.

Prints one JSON line per configuration with the common benchmark keys plus
`step_ms`, `compile_s` (the warm-up, which includes tracing and compiling),
`traces` (times the step was traced: 1, no per-step recompilation) and
`model_flops_per_example`. Several configurations run one after another,
each in a fresh process (`--in-process` keeps them in one), so that each has
its own memory peak and none inherits another's allocator and thread-pool
state. `peak_memory_mb` is the GPU peak, or on CPU the peak resident memory
of the process. `mfu`
divides the model FLOPs (flops_computation.py, the original's formula:
backward = forward) by the matmul peak of bench/peak.py measured on the same
device and dtype.

GPU (one device; add `--dtype bf16` and compare `--both-xla`):
    python3 bench/pretrain.py --model-size small --batch-size 128 --seq-len 128 \
        --steps 100 --warmup 10 --iterations-per-loop 50 --both-xla
    python3 bench/pretrain.py --model-size base --batch-size 128 --seq-len 128 \
        --dtype bf16 --xla --steps 100 --warmup 10 --iterations-per-loop 50
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Dict, List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from pretrain import runner
from bench import common, peak  # noqa: E402
from configure_pretraining import PretrainingConfig  # noqa: E402
from model import sizes  # noqa: E402
from model.flops import electra_pretraining_flops_per_example  # noqa: E402
from pretrain import pretrain_data  # noqa: E402
from util import files  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB = os.path.join(REPO_ROOT, "data", "vocab", "uncased_vocab.txt")
MIXED_PRECISION = {"fp32": "off", "bf16": "bf16", "fp16": "fp16"}
CLS_ID, SEP_ID, FIRST_WORD_ID = 101, 102, 1000  # uncased vocab; ids >= 1000 are word pieces
SYNTHETIC_BATCHES = 16


def make_config(args: argparse.Namespace, work_dir: str, batch: int, seq: int,
                xla: bool) -> PretrainingConfig:
  hparams = dict(model_size=args.model_size, max_seq_length=seq, train_batch_size=batch,
                 use_xla=xla, mixed_precision=MIXED_PRECISION[args.dtype], seed=0,
                 vocab_file=VOCAB, iterations_per_loop=args.iterations_per_loop,
                 num_train_steps=10 ** 6, num_warmup_steps=10)
  if args.generator_hidden_size is not None:
    hparams["generator_hidden_size"] = args.generator_hidden_size
  if args.data:
    hparams["pretrain_tfrecords"] = args.data
  return PretrainingConfig("bench", work_dir, **hparams)


def synthetic_dataset(config: PretrainingConfig) -> tf.data.Dataset:
  """16 distinct full-length random batches, repeated (see the module docstring)."""
  rng = np.random.RandomState(0)
  shape = [SYNTHETIC_BATCHES, config.train_batch_size, config.max_seq_length]
  input_ids = rng.randint(FIRST_WORD_ID, config.vocab_size, size=shape).astype(np.int32)
  middle = config.max_seq_length // 2
  input_ids[..., 0] = CLS_ID
  input_ids[..., [middle - 1, -1]] = SEP_ID
  segment_ids = np.zeros(shape, np.int32)
  segment_ids[..., middle:] = 1
  batches = {"input_ids": input_ids, "input_mask": np.ones(shape, np.int32),
             "segment_ids": segment_ids}
  return tf.data.Dataset.from_tensor_slices(batches).repeat().prefetch(2)


def flops_per_example(config: PretrainingConfig, model) -> float:
  """Training FLOPs of one example by the original's formula (flops_computation.py)."""
  disc = model.bert_config
  gen = sizes.get_generator_config(config, disc)
  return electra_pretraining_flops_per_example(
      disc.hidden_size, disc.num_hidden_layers, gen.hidden_size, gen.num_hidden_layers,
      config.embedding_size or disc.hidden_size, config.max_seq_length, config.mask_prob,
      config.vocab_size, tied_embeddings=not config.untied_generator_embeddings)


def bench_config(args: argparse.Namespace, work_dir: str, batch: int, seq: int,
                 xla: bool) -> Dict[str, object]:
  """Times `args.steps` training steps after `args.warmup` warm-up steps."""
  config = make_config(args, work_dir, batch, seq, xla)
  if tf.config.list_physical_devices("GPU"):
    tf.config.experimental.reset_memory_stats("GPU:0")  # a peak per configuration
  tf.random.set_seed(0)
  model, optimizer = runner.build_model(config)
  trainer = runner.make_trainer(config, model, optimizer)
  dataset = (pretrain_data.get_dataset(config.pretrain_tfrecords, seq, batch, True, seed=0)
             if args.data else synthetic_dataset(config))
  iterator = iter(dataset)
  start = time.perf_counter()
  float(trainer.train_steps(iterator, max(1, args.warmup))["loss"])  # trace, compile, warm up
  compile_seconds = time.perf_counter() - start
  start = time.perf_counter()
  done, loss = 0, None
  while done < args.steps:
    num_steps = min(args.iterations_per_loop, args.steps - done)
    loss = trainer.train_steps(iterator, num_steps)["loss"]
    done += num_steps
  loss = float(loss)  # waits for the device
  seconds = time.perf_counter() - start
  examples_per_sec = args.steps * batch / seconds
  flops = flops_per_example(config, model)
  return dict(
      device=common.describe_device(), dtype=args.dtype, xla=xla, batch=batch, seq=seq,
      examples_per_sec=examples_per_sec, tokens_per_sec=examples_per_sec * seq,
      mfu=flops * examples_per_sec / (args.peak_flops or peak.peak_flops(args.dtype)),
      peak_memory_mb=common.peak_memory_mb(), command=common.command_line(),
      model_size=args.model_size, generator_hidden_size=config.generator_hidden_size,
      data=args.data or "synthetic", steps=args.steps, step_ms=1000 * seconds / args.steps,
      iterations_per_loop=args.iterations_per_loop, compile_s=compile_seconds,
      traces=trainer.train_loop_traces, model_flops_per_example=flops, final_loss=loss,
      threads=args.threads)


def main(argv: List[str] = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--model-size", default="small", choices=["small", "base", "large"])
  parser.add_argument("--batch-size", type=int, nargs="+", default=[32])
  parser.add_argument("--seq-len", type=int, nargs="+", default=[128])
  parser.add_argument("--steps", type=int, default=20, help="timed steps per configuration")
  parser.add_argument("--warmup", type=int, default=3, help="untimed steps (incl. compile)")
  parser.add_argument("--xla", action=argparse.BooleanOptionalAction, default=False)
  parser.add_argument("--both-xla", action="store_true", help="measure XLA off and on")
  parser.add_argument("--dtype", choices=sorted(MIXED_PRECISION), default="fp32")
  parser.add_argument("--threads", type=int, default=None)
  parser.add_argument("--generator-hidden-size", type=float, default=None,
                      help="generator size as a fraction of the discriminator's")
  parser.add_argument("--iterations-per-loop", type=int, default=10,
                      help="steps per tf.function call (one host sync each)")
  parser.add_argument("--data", default=None, help="tfrecord glob (default: synthetic)")
  parser.add_argument("--peak-flops", type=float, default=None,
                      help="MFU denominator (default: bench/peak.py measured in-process)")
  parser.add_argument("--in-process", action="store_true",
                      help="measure several configurations in this process (default: one "
                           "fresh process each, so they cannot disturb each other)")
  args = parser.parse_args(argv)
  configs = [(xla, seq, batch) for xla in ([False, True] if args.both_xla else [args.xla])
             for seq in args.seq_len for batch in args.batch_size]
  if len(configs) > 1 and not args.in_process:
    common.run_isolated(os.path.abspath(__file__),
                        [_single_config_argv(args, *config) for config in configs])
    return
  common.set_threads(args.threads)
  work_dir = tempfile.mkdtemp(prefix="bench_pretrain_")
  try:
    for xla, seq, batch in configs:
      common.emit(bench_config(args, work_dir, batch, seq, xla))
  finally:
    files.rmrf(work_dir)


def _single_config_argv(args: argparse.Namespace, xla: bool, seq: int,
                        batch: int) -> List[str]:
  """The command-line arguments that measure one configuration of `args`."""
  argv = ["--model-size", args.model_size, "--batch-size", str(batch), "--seq-len", str(seq),
          "--steps", str(args.steps), "--warmup", str(args.warmup),
          "--xla" if xla else "--no-xla", "--dtype", args.dtype,
          "--iterations-per-loop", str(args.iterations_per_loop)]
  if args.threads:
    argv += ["--threads", str(args.threads)]
  if args.generator_hidden_size is not None:
    argv += ["--generator-hidden-size", str(args.generator_hidden_size)]
  if args.data:
    argv += ["--data", args.data]
  if args.peak_flops:
    argv += ["--peak-flops", str(args.peak_flops)]
  return argv


if __name__ == "__main__":
  main()
