"""A compute-matched mini-replication of ELECTRA's central claim, in one command.

    python3 experiments/replicate_small.py [--budget-minutes M] [--seeds N]
        [--output-dir D] [--tasks sst,boolq,chunk] [--pretrain-hparams JSON]
        [--finetune-hparams JSON] [--electra-steps N] [--corpus-dir DIR]

Pre-trains the same small encoder (default: the quick-start's, 3 layers,
hidden 144, embeddings 128) three ways and fine-tunes each on the bundled
downstream tasks:

  (a) ELECTRA (replaced-token detection + the generator's MLM),
  (b) BERT-style masked LM (`electra_objective: false`), with the SAME
      pre-training FLOPs as (a), counted by `flops_computation.py`,
  (c) no pre-training (random initialization).

Compute matching: ELECTRA gets `--budget-minutes` of pre-training wall time
(the step time is measured first, on this machine, with a few untimed warm-up
steps), or exactly `--electra-steps`. An ELECTRA step costs more FLOPs than an
MLM step (the generator and the discriminator head come on top of the same
encoder), so MLM gets `round(steps_electra * flops_electra / flops_mlm)` steps:
equal FLOPs, not equal wall time (both wall times are reported). The input
embeddings are counted as the gather this code does (`sparse_embed_lookup`);
the original's one-hot-matmul count is reported next to it.
Everything else (batch, LR schedule shape, data order, seed) is the same.

Pre-training curves come from the held-out chapters of the corpus (the last
`--heldout-fraction` of its documents, never trained on): every checkpoint is
evaluated with the `do_eval` metrics (disc AUC / precision / recall / accuracy,
MLM accuracy and losses), against the global step and against FLOPs.

Fine-tuning runs `--seeds` trials per (model, task) with the fine-tuning
`seed` hparam (trial t uses seed + t) and reports the median (the original
README's protocol), mean, standard deviation, min and max of the task's metric.

Outputs in `--output-dir` (default `replication_small`):
  results.json  everything (settings, curves, per-trial scores, summaries),
  results.md    the Markdown tables,
  curves.png    the figure (needs matplotlib: `pip install -e .[experiments]`;
                skipped with a message otherwise),
  tensorboard/  the same scalars (`tensorboard --logdir D/tensorboard`),
  log.txt       the full training log; data/ the working data dir
                (re-running resumes finished pre-training and re-uses it).
"""
from __future__ import annotations

import argparse
import datetime
import glob
import logging
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from typing import Any, Dict, Optional, Sequence

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=wrong-import-position
import configure_finetuning  # noqa: E402
import configure_pretraining  # noqa: E402
from experiments import pretraining_curve  # noqa: E402
from finetune import trials  # noqa: E402
from model import flops  # noqa: E402
from model.sizes import get_bert_config, get_generator_config  # noqa: E402
from pretrain import runner  # noqa: E402
from training import config_base  # noqa: E402
from util import cli, files, logs  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OBJECTIVES = ("electra", "mlm")
MODELS = ("electra", "mlm", "none")
MODEL_LABELS = {"electra": "ELECTRA", "mlm": "MLM (BERT-style)", "none": "no pre-training"}
CURVE_KEYS = ("disc_auc", "disc_precision", "disc_recall", "disc_accuracy",
              "masked_lm_accuracy", "masked_lm_loss", "disc_loss", "loss")

# The quick-start's encoder and pre-training recipe (README "Quick start").
DEFAULT_PRETRAIN_HPARAMS: Dict[str, Any] = {
    "model_size": "small",
    "model_hparam_overrides": {"num_hidden_layers": 3, "hidden_size": 144,
                               "intermediate_size": 576, "num_attention_heads": 4},
    "train_batch_size": 8,
    "learning_rate": 1e-4,
    "num_warmup_steps": 100,
    "max_seq_length": 128,
    "eval_batch_size": 64,  # × --eval-steps 2: ~ the held-out set (126 sequences) once
}
# Fixed before any result was seen: the paper's Small fine-tuning LR (3e-4);
# everything else is the original's default (3 epochs; chunk: max_seq_length 256).
DEFAULT_FINETUNE_HPARAMS: Dict[str, Any] = {
    "learning_rate": 3e-4,
    "train_batch_size": 32,
}
# Bundled task data (data/README.md): the folder under data/tasks and the name
# the fine-tuning code reads it under.
TASKS = {
    "sst": {"folder": "sst_like", "metric": "accuracy"},
    "boolq": {"folder": "boolq", "metric": "accuracy"},
    "chunk": {"folder": "chunk", "metric": "f1"},
}
BOOLQ_TASK_CONFIG = {"name": "boolq", "type": "classification", "text_a_column": 1,
                     "text_b_column": 2, "label_column": 3, "labels": ["False", "True"]}
ARCHITECTURE_HPARAMS = ("model_size", "model_hparam_overrides", "embedding_size", "vocab_size",
                        "do_lower_case")
CALIBRATION_WARMUP_STEPS = 3
CALIBRATION_STEPS = 10

logger = logging.getLogger("electra")


# === Data ===

def split_corpus(corpus_dir: str, train_dir: str, heldout_dir: str,
                 heldout_fraction: float) -> Dict[str, int]:
  """Copies the corpus's documents into a training and a held-out text dir.

  Documents are separated by blank lines (the builder's format); the last
  `heldout_fraction` of the documents of each file (at least one) are held out.

  Returns:
    {"train_documents": n, "heldout_documents": m}.
  """
  text_files = sorted(p for p in glob.glob(os.path.join(corpus_dir, "**", "*"), recursive=True)
                      if os.path.isfile(p))
  if not text_files:
    raise cli.DataError(f"No text files in --corpus-dir {corpus_dir}.")
  counts = {"train_documents": 0, "heldout_documents": 0}
  for i, path in enumerate(text_files):
    with open(path, encoding="utf-8") as f:
      docs = [d.strip("\n") for d in re.split(r"\n\s*\n", f.read()) if d.strip()]
    if len(docs) < 2:
      raise cli.DataError(f"{path} has fewer than 2 documents (blank-line separated): "
                          "nothing to hold out.")
    n_heldout = max(1, int(round(len(docs) * heldout_fraction)))
    name = f"{i:03d}_{os.path.basename(path)}"
    for out_dir, part in ((train_dir, docs[:-n_heldout]), (heldout_dir, docs[-n_heldout:])):
      with files.atomic_write(os.path.join(out_dir, name)) as f:
        f.write("\n\n".join(part) + "\n")
    counts["train_documents"] += len(docs) - n_heldout
    counts["heldout_documents"] += n_heldout
  return counts


def prepare_data(args: argparse.Namespace, data_dir: str, max_seq_length: int) -> Dict[str, Any]:
  """Vocab, train/held-out tfrecords and fine-tuning data under `data_dir` (kept if present)."""
  os.makedirs(data_dir, exist_ok=True)
  vocab = os.path.join(data_dir, "vocab.txt")
  if not os.path.exists(vocab):
    shutil.copyfile(args.vocab_file, vocab)
  info: Dict[str, Any] = {}
  for split in ("train", "heldout"):
    records = os.path.join(data_dir, f"pretrain_{split}_tfrecords")
    if not glob.glob(os.path.join(records, "*.tfrecord*")):
      text_dirs = {s: os.path.join(data_dir, f"corpus_{s}") for s in ("train", "heldout")}
      for d in text_dirs.values():
        files.rmrf(d)
        os.makedirs(d)
      info.update(split_corpus(args.corpus_dir, text_dirs["train"], text_dirs["heldout"],
                               args.heldout_fraction))
      for s, d in text_dirs.items():
        # As a user runs it (its own process and workers).
        process = subprocess.run([
            sys.executable, os.path.join(REPO, "build_pretraining_dataset.py"),
            "--corpus-dir", d, "--vocab-file", vocab, "--seed", "0",
            "--max-seq-length", str(max_seq_length),
            "--output-dir", os.path.join(data_dir, f"pretrain_{s}_tfrecords")], check=False)
        if process.returncode:
          raise cli.DataError(f"Building the {s} pre-training tfrecords failed.")
  for task in args.tasks:
    target = os.path.join(data_dir, "finetuning_data", task)
    if not os.path.isdir(target):
      shutil.copytree(os.path.join(args.task_data_dir, TASKS[task]["folder"]), target)
  return info


def count_records(pattern: str) -> int:
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  return sum(1 for path in glob.glob(pattern) for _ in tf.data.TFRecordDataset(path))


# === FLOPs ===

def pretraining_flops_per_step(config: configure_pretraining.PretrainingConfig,
                               sparse_embed_lookup: bool = True) -> float:
  """Training FLOPs of one step by the original's formula (flops_computation.py).

  ELECTRA: the discriminator with its binary head plus the generator with its
  MLM head; MLM: one transformer with the MLM head. Sequence length, batch,
  embedding size and the masked fraction (max_predictions / seq_len) are the run's.

  Args:
    config: the run's config.
    sparse_embed_lookup: count the input embeddings as a gather (what this
      code computes, `tf.gather`) rather than a one-hot matmul (what the
      original counted, as on TPU). The one-hot count adds 2·E·V FLOPs per
      token and tower, which dominates a small encoder with a 30k vocabulary
      and would make an ELECTRA step look far costlier than it is.
  """
  bert = get_bert_config(config)
  e = config.embedding_size or bert.hidden_size
  s = config.max_seq_length
  frac = config.max_predictions_per_seq / s
  disc = flops.TransformerHparams(
      bert.hidden_size, bert.num_hidden_layers, s=s, v=config.vocab_size, e=e,
      i=bert.intermediate_size, heads=bert.num_attention_heads, output_frac=frac,
      sparse_embed_lookup=sparse_embed_lookup)
  if not config.electra_objective:
    return disc.get_train_flops(config.train_batch_size, 1)
  gen_config = get_generator_config(config, bert)
  gen = flops.TransformerHparams(
      gen_config.hidden_size, gen_config.num_hidden_layers, s=s, v=config.vocab_size,
      e=e if not config.untied_generator_embeddings else None,
      i=gen_config.intermediate_size, heads=gen_config.num_attention_heads, output_frac=frac,
      sparse_embed_lookup=sparse_embed_lookup)
  return (disc.get_train_flops(config.train_batch_size, 1, discriminator=True)
          + gen.get_train_flops(config.train_batch_size, 1))


# === Pre-training ===

def pretrain_config(data_dir: str, name: str, hparams: Dict[str, Any],
                    **extra: Any) -> configure_pretraining.PretrainingConfig:
  merged = dict(hparams)
  merged.update(extra)
  merged.setdefault("pretrain_tfrecords",
                    os.path.join(data_dir, "pretrain_train_tfrecords", "*.tfrecord*"))
  return configure_pretraining.PretrainingConfig(name, data_dir, **merged)


def measure_step_seconds(config: configure_pretraining.PretrainingConfig) -> float:
  """Seconds per training step on this machine (a few warm-up steps untimed)."""
  from pretrain import pretrain_data  # pylint: disable=import-outside-toplevel
  model, optimizer = runner.build_model(config)
  trainer = runner.make_trainer(config, model, optimizer)
  iterator = iter(pretrain_data.get_dataset(config.pretrain_tfrecords, config.max_seq_length,
                                            config.train_batch_size, is_training=True,
                                            seed=config.seed))
  float(trainer.train_steps(iterator, CALIBRATION_WARMUP_STEPS)["loss"])
  start = time.perf_counter()
  float(trainer.train_steps(iterator, CALIBRATION_STEPS)["loss"])
  return (time.perf_counter() - start) / CALIBRATION_STEPS


def pretrain_and_curve(data_dir: str, objective: str, hparams: Dict[str, Any], steps: int,
                       eval_every: int, eval_steps: int, flops_per_step: float
                       ) -> Dict[str, Any]:
  """Pre-trains (resuming if interrupted) and evaluates every kept checkpoint on held-out data."""
  common = dict(num_train_steps=steps, save_checkpoints_steps=eval_every,
                keep_checkpoint_max=0, electra_objective=objective == "electra")
  config = pretrain_config(data_dir, objective, hparams, **common)
  start = time.time()
  runner.train_or_eval(config)
  train_seconds = time.time() - start
  eval_config = pretrain_config(
      data_dir, objective, hparams, do_train=False, do_eval=True, num_eval_steps=eval_steps,
      pretrain_tfrecords=os.path.join(data_dir, "pretrain_heldout_tfrecords", "*.tfrecord*"),
      **common)
  curve = []
  for results in pretraining_curve.evaluate_checkpoints(eval_config, min_step=0):
    step = int(results["global_step"])
    point = {"step": step, "flops": step * flops_per_step}
    point.update({k: float(results[k]) for k in CURVE_KEYS if k in results})
    curve.append(point)
  return {"steps": steps, "flops_per_step": flops_per_step, "total_flops": steps * flops_per_step,
          "train_seconds": train_seconds, "model_dir": config.model_dir, "curve": curve}


# === Fine-tuning ===

def summarize(scores: Sequence[float]) -> Dict[str, float]:
  """Median (the original README's protocol), mean, population std, min, max."""
  return {"median": statistics.median(scores), "mean": statistics.fmean(scores),
          "std": statistics.pstdev(scores), "min": min(scores), "max": max(scores),
          "n": len(scores)}


def finetune(data_dir: str, model: str, task: str, seeds: int, hparams: Dict[str, Any],
             pretrain_hparams: Dict[str, Any], seed: int) -> Dict[str, Any]:
  """`seeds` fine-tuning trials of one pre-trained model (or none) on one task."""
  # The pre-trained encoder's architecture hparams (fine-tuning must build the same shapes).
  merged = {key: pretrain_hparams[key] for key in ARCHITECTURE_HPARAMS if key in pretrain_hparams}
  merged.update(hparams)
  merged.update(task_names=[task], num_trials=seeds, seed=seed, keep_all_models=False)
  if task == "boolq":
    merged["task_configs"] = [BOOLQ_TASK_CONFIG]
  if model == "none":
    merged["init_checkpoint"] = None
  config = configure_finetuning.FinetuningConfig(model, data_dir, **merged)
  results = trials.run_finetuning(config)
  metric = TASKS[task]["metric"]
  scores = [float(trial[task][metric]) for trial in results]
  return {"metric": metric, "scores": scores, **summarize(scores)}


# === Reports ===

def _fmt(x: float, digits: int = 1) -> str:
  return f"{x:.{digits}f}"


def markdown_report(results: Dict[str, Any]) -> str:
  """The fine-tuning table (median, mean ± std, range) and the pre-training summary."""
  lines = [f"Fine-tuning dev scores over {results['settings']['seeds']} fine-tuning seeds: "
           "**median** (mean ± std, min–max).", "",
           "| task (metric) | " + " | ".join(MODEL_LABELS[m] for m in MODELS) + " |",
           "| --- |" + " --- |" * len(MODELS)]
  for task in results["settings"]["tasks"]:
    cells = []
    for model in MODELS:
      r = results["finetuning"][model][task]
      cells.append(f"**{_fmt(r['median'])}** ({_fmt(r['mean'])} ± {_fmt(r['std'])}, "
                   f"{_fmt(r['min'])}–{_fmt(r['max'])})")
    metric = results["finetuning"]["electra"][task]["metric"]
    lines.append(f"| {task} ({metric}) | " + " | ".join(cells) + " |")
  lines += ["", "Pre-training (held-out evaluation at the last step):", "",
            "| objective | steps | train FLOPs | wall time (s)¹ | MLM acc | MLM loss | "
            "disc AUC | disc precision | disc recall |", "| --- |" + " --- |" * 8]
  for objective in OBJECTIVES:
    p = results["pretraining"][objective]
    last = p["curve"][-1] if p["curve"] else {}
    def get(key: str, digits: int = 3) -> str:
      return _fmt(last[key], digits) if key in last else "–"
    lines.append(f"| {MODEL_LABELS[objective]} | {p['steps']} | {p['total_flops']:.3g} | "
                 f"{p['train_seconds']:.0f} | {get('masked_lm_accuracy')} | "
                 f"{get('masked_lm_loss')} | {get('disc_auc')} | {get('disc_precision')} | "
                 f"{get('disc_recall')} |")
  lines += ["", "¹ of this invocation's training only: a resumed run counts what it trained."]
  return "\n".join(lines) + "\n"


def write_tensorboard(results: Dict[str, Any], log_dir: str) -> None:
  """The curves (vs step, and vs GFLOPs as the step) and the fine-tuning summaries."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from training import trainer as trainer_lib  # pylint: disable=import-outside-toplevel
  for objective in OBJECTIVES:
    writer = tf.summary.create_file_writer(os.path.join(log_dir, objective))
    for point in results["pretraining"][objective]["curve"]:
      values = {k: point[k] for k in CURVE_KEYS if k in point}
      trainer_lib.write_scalars(writer, point["step"],
                                {f"heldout/{k}": v for k, v in values.items()})
      trainer_lib.write_scalars(writer, int(round(point["flops"] / 1e9)),
                                {f"heldout_vs_gflops/{k}": v for k, v in values.items()})
    writer.close()
  for model in MODELS:
    writer = tf.summary.create_file_writer(os.path.join(log_dir, f"finetune_{model}"))
    for task, r in results["finetuning"][model].items():
      trainer_lib.write_scalars(writer, 0, {f"finetune/{task}_{r['metric']}_{k}": r[k]
                                            for k in ("median", "mean", "std", "min", "max")})
    writer.close()


def write_figure(results: Dict[str, Any], path: str) -> Optional[str]:
  """curves.png: held-out curves vs FLOPs and the fine-tuning scores; None without matplotlib."""
  try:
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  except ImportError:
    return None
  fig, axes = plt.subplots(2, 2, figsize=(11, 8))
  colors = {"electra": "tab:blue", "mlm": "tab:orange", "none": "tab:gray"}
  curves = {o: results["pretraining"][o]["curve"] for o in OBJECTIVES}
  ax = axes[0][0]
  for key, style in (("disc_auc", "-"), ("disc_precision", "--"), ("disc_recall", ":")):
    pts = [p for p in curves["electra"] if key in p]
    ax.plot([p["flops"] for p in pts], [p[key] for p in pts], style, marker="o",
            color=colors["electra"], label=key)
  ax.set(title="ELECTRA discriminator (held-out)", xlabel="pre-training FLOPs", ylim=(0, 1))
  ax.legend()
  for ax, key, title in ((axes[0][1], "masked_lm_accuracy", "MLM accuracy (held-out)"),
                         (axes[1][0], "masked_lm_loss", "MLM loss (held-out)")):
    for objective in OBJECTIVES:
      pts = [p for p in curves[objective] if key in p]
      label = ("ELECTRA's generator" if objective == "electra" else MODEL_LABELS[objective])
      ax.plot([p["flops"] for p in pts], [p[key] for p in pts], marker="o",
              color=colors[objective], label=label)
    ax.set(title=title, xlabel="pre-training FLOPs")
    ax.legend()
  ax = axes[1][1]
  tasks = results["settings"]["tasks"]
  width = 0.8 / len(MODELS)
  for j, model in enumerate(MODELS):
    xs = [i + (j - 1) * width for i in range(len(tasks))]
    r = [results["finetuning"][model][t] for t in tasks]
    ax.bar(xs, [x["median"] for x in r], width, color=colors[model], label=MODEL_LABELS[model])
    for x, item in zip(xs, r):
      ax.plot([x] * len(item["scores"]), item["scores"], "k.", markersize=4)
  ax.set_xticks(range(len(tasks)))
  ax.set_xticklabels([f"{t}\n({results['finetuning']['electra'][t]['metric']})" for t in tasks])
  ax.set(title="Fine-tuning dev score: median (bars), seeds (dots)")
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


# === Main ===

def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--budget-minutes", type=float, default=10.0,
                      help="ELECTRA's pre-training wall time (MLM gets the same FLOPs).")
  parser.add_argument("--electra-steps", type=int, default=None,
                      help="ELECTRA's pre-training steps (instead of --budget-minutes).")
  parser.add_argument("--seeds", type=int, default=3, help="Fine-tuning seeds per task.")
  parser.add_argument("--output-dir", default="replication_small")
  parser.add_argument("--tasks", default="sst,boolq,chunk",
                      help=f"Comma-separated subset of {','.join(TASKS)}.")
  parser.add_argument("--eval-points", type=int, default=8,
                      help="Held-out evaluations along each pre-training run.")
  parser.add_argument("--eval-steps", type=int, default=2,
                      help="Held-out batches (of eval_batch_size) per evaluation.")
  parser.add_argument("--pretrain-hparams", default="{}",
                      help="JSON (or .json file) overriding the pre-training hparams, for both "
                      "objectives (e.g. a larger model_size on a GPU).")
  parser.add_argument("--finetune-hparams", default="{}",
                      help="JSON (or .json file) overriding the fine-tuning hparams.")
  parser.add_argument("--seed", type=int, default=0,
                      help="Pre-training seed; fine-tuning trial t uses seed + t.")
  parser.add_argument("--corpus-dir", default=os.path.join(REPO, "data", "corpus"))
  parser.add_argument("--heldout-fraction", type=float, default=0.1)
  parser.add_argument("--vocab-file", default=os.path.join(REPO, "data", "vocab",
                                                            "uncased_vocab.txt"))
  parser.add_argument("--task-data-dir", default=os.path.join(REPO, "data", "tasks"),
                      help="Folders sst_like/, boolq/, chunk/ of the bundled task data.")
  args = parser.parse_args(argv)
  args.tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
  unknown = [t for t in args.tasks if t not in TASKS]
  if unknown or not args.tasks:
    raise cli.UsageError(f"--tasks: unknown {unknown or 'empty'}; choose from {', '.join(TASKS)}.")
  if args.seeds < 1 or args.eval_points < 1 or args.eval_steps < 1:
    raise cli.UsageError("--seeds, --eval-points and --eval-steps must be >= 1.")
  if args.budget_minutes <= 0 or (args.electra_steps is not None and args.electra_steps < 1):
    raise cli.UsageError("--budget-minutes must be > 0 and --electra-steps >= 1.")
  if not 0 < args.heldout_fraction < 1:
    raise cli.UsageError("--heldout-fraction must be in (0, 1).")
  return args


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
  args = parse_args(argv)
  out = os.path.abspath(args.output_dir)
  data_dir = os.path.join(out, "data")
  os.makedirs(out, exist_ok=True)
  logs.setup_logging()
  handler = logging.FileHandler(os.path.join(out, "log.txt"))
  handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
  for h in logger.handlers:
    h.setLevel(logging.WARNING)  # the console gets this script's own lines
  logger.addHandler(handler)
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  tf.get_logger().setLevel("ERROR")

  pretrain_hparams = dict(DEFAULT_PRETRAIN_HPARAMS, seed=args.seed, iterations_per_loop=50)
  pretrain_hparams.update(config_base.parse_hparams(args.pretrain_hparams))
  finetune_hparams = dict(DEFAULT_FINETUNE_HPARAMS)
  finetune_hparams.update(config_base.parse_hparams(args.finetune_hparams))
  started = time.time()
  print(f"[replicate_small] preparing data in {data_dir}", flush=True)
  data_info = prepare_data(args, data_dir, int(pretrain_hparams["max_seq_length"]))
  data_info["train_examples"] = count_records(
      os.path.join(data_dir, "pretrain_train_tfrecords", "*.tfrecord*"))
  data_info["heldout_examples"] = count_records(
      os.path.join(data_dir, "pretrain_heldout_tfrecords", "*.tfrecord*"))

  step_flops = {o: pretraining_flops_per_step(pretrain_config(
      data_dir, o, pretrain_hparams, electra_objective=o == "electra")) for o in OBJECTIVES}
  dense = [pretraining_flops_per_step(pretrain_config(
      data_dir, o, pretrain_hparams, electra_objective=o == "electra"), sparse_embed_lookup=False)
      for o in OBJECTIVES]
  dense_ratio = dense[0] / dense[1]
  step_seconds: Dict[str, float] = {}
  plan_path = os.path.join(out, "plan.json")
  plan = files.load_json(plan_path) if os.path.exists(plan_path) else None
  if args.electra_steps is not None:
    electra_steps = args.electra_steps
  elif plan is not None:  # a re-run resumes the same runs instead of re-calibrating
    electra_steps, step_seconds = plan["electra_steps"], plan["step_seconds"]
    print(f"[replicate_small] re-using the plan in {plan_path}: {electra_steps} ELECTRA steps",
          flush=True)
  else:
    calib = pretrain_config(data_dir, "calibration", pretrain_hparams)
    step_seconds["electra"] = measure_step_seconds(calib)
    electra_steps = max(args.eval_points, int(args.budget_minutes * 60 / step_seconds["electra"]))
    print(f"[replicate_small] ELECTRA step: {step_seconds['electra']:.3f} s -> "
          f"{electra_steps} steps in {args.budget_minutes:g} min", flush=True)
  files.write_json({"electra_steps": electra_steps, "step_seconds": step_seconds}, plan_path)
  steps = {"electra": electra_steps,
           "mlm": max(1, int(round(electra_steps * step_flops["electra"] / step_flops["mlm"])))}

  pretraining = {}
  for objective in OBJECTIVES:
    every = max(1, math.ceil(steps[objective] / args.eval_points))
    print(f"[replicate_small] pre-training {objective}: {steps[objective]} steps × "
          f"{step_flops[objective]:.3g} FLOPs = {steps[objective] * step_flops[objective]:.3g} FLOPs",
          flush=True)
    pretraining[objective] = pretrain_and_curve(data_dir, objective, pretrain_hparams,
                                                steps[objective], every, args.eval_steps,
                                                step_flops[objective])
    last = pretraining[objective]["curve"][-1]
    print(f"[replicate_small]   done in {pretraining[objective]['train_seconds']:.0f} s; "
          "held-out: " + ", ".join(f"{k} {last[k]:.3f}" for k in CURVE_KEYS if k in last),
          flush=True)

  finetuning: Dict[str, Dict[str, Any]] = {m: {} for m in MODELS}
  results = {
      "command": "python3 experiments/replicate_small.py " + " ".join(
          sys.argv[1:] if argv is None else list(argv)),
      "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
      "machine": f"{platform.platform()}, {os.cpu_count()} CPUs, "
                 f"TensorFlow {tf.__version__}, devices "
                 f"{[d.device_type for d in tf.config.list_physical_devices()]}",
      "total_seconds": None,
      "settings": {"tasks": [], "seeds": args.seeds, "pretrain_hparams": pretrain_hparams,
                   "finetune_hparams": finetune_hparams, "step_seconds": step_seconds,
                   "budget_minutes": None if args.electra_steps else args.budget_minutes,
                   "flops_ratio_electra_over_mlm": step_flops["electra"] / step_flops["mlm"],
                   "flops_ratio_if_embeddings_were_one_hot_matmuls": dense_ratio,
                   "data": data_info},
      "pretraining": pretraining,
      "finetuning": finetuning,
  }
  # Task by task, every model, results written after each task: a long run that
  # is stopped keeps the finished tasks.
  for task in args.tasks:
    for model in MODELS:
      r = finetune(data_dir, model, task, args.seeds, finetune_hparams, pretrain_hparams,
                   args.seed)
      finetuning[model][task] = r
      print(f"[replicate_small] fine-tuned {MODEL_LABELS[model]} on {task}: {r['metric']} "
            f"median {r['median']:.1f} (scores {', '.join(f'{s:.1f}' for s in r['scores'])})",
            flush=True)
    results["settings"]["tasks"].append(task)
    results["total_seconds"] = time.time() - started
    files.write_json(results, os.path.join(out, "results.json"))
    table = markdown_report(results)
    with files.atomic_write(os.path.join(out, "results.md")) as f:
      f.write(table)
  write_tensorboard(results, os.path.join(out, "tensorboard"))
  figure = write_figure(results, os.path.join(out, "curves.png"))
  print(table)
  print(f"[replicate_small] wrote {out}/results.json, results.md, tensorboard/"
        + (", curves.png" if figure else
           "; no curves.png: matplotlib is not installed (pip install -e .[experiments])"))
  return results


if __name__ == "__main__":
  sys.exit(cli.run(main))
