"""This project vs Hugging Face transformers' PyTorch ELECTRA, same step, same precision.

    python3 bench/compare_hf.py [--quick] [--threads 2] [--steps N]
        [--configs pretrain:fp32 pretrain:bf16 sst:fp32 squad:fp32 infer1:fp32 infer32:fp32
                   serve1:fp32 serve32:fp32]

Every configuration runs twice, back to back, each time in a fresh Python
process: once through this project (`bench/pretrain.py` or
`bench/finetune.py`, the real training/prediction code) and once through HF
transformers with PyTorch on the CPU. One JSON line per configuration gives
both throughputs, `ratio` (ours / HF), each side's `compile_s` (time of the
first call, i.e. trace + compile + the first step) and MFU; a Markdown table
follows at the end.

Configurations (ELECTRA-Small: hidden 256, 12 layers, embedding 128):

* `pretrain:<dtype>`: the pre-training step, seq 128, batch 32, generator 1/4
  (hidden 64). HF side: `ElectraForMaskedLM` generator and
  `ElectraForPreTraining` discriminator sharing one `ElectraEmbeddings` (and
  the tied output embedding), the original's masking (15% of the non-special
  positions, 85% of them [MASK]), the generator head on the masked positions
  only (as the original; cheaper for HF than full-sequence logits), Gumbel-max
  sampling over the vocabulary, loss = MLM + 50 × discriminator, AdamW
  (weight decay 0.01, none on biases and layer norms), global-norm clipping 1.0.
* `sst:<dtype>`: fine-tuning step, seq 128, batch 32
  (`ElectraForSequenceClassification`); `squad:<dtype>`: seq 384, batch 8
  (`ElectraForQuestionAnswering`). AdamW + clipping on the HF side; ours is
  run_finetuning's step (layer-wise LR decay, clipping, Adam).
* `infer1:<dtype>`, `infer32:<dtype>`: inference, seq 128, batch 1 / 32: the
  discriminator encoder with the `sst` classification head, eval mode; HF
  under `model.eval()` and `torch.inference_mode()`, ours
  `ModelRunner.predict_batch` (XLA-compiled in fp32, hparam `xla_predict`);
  both copy the outputs to numpy.
* `serve1:<dtype>`, `serve32:<dtype>`: the same forward through the SavedModel
  that `export_model.py` writes (`serving_default`, loaded back with
  `tf.saved_model.load`) against the same HF eval-mode forward;
  `servexla1`, `servexla32`: the same with `export_model.py --xla`.

`bf16` is this project's `mixed_precision: bf16` against
`torch.autocast("cpu", dtype=torch.bfloat16)` (bf16 compute, fp32 weights on
both sides). MFU divides the model FLOPs (flops_computation.py, the original's
formula) by the best matmul peak measured on this machine: the max of
`bench/peak.py` (TensorFlow) and torch's own square matmul chain at n = 2048,
each in its own process (`peak_source` says which won), and by the nominal
peak from lscpu where it can be computed (cores × clock × FLOPs/cycle).

torch and transformers are optional bench-only dependencies: without them the
HF side is skipped with a message and only this project's numbers print.
`--quick` (2 timed steps; pre-training fp32/bf16, `sst` fp32, inference at
batch 32) takes a few minutes on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from typing import Dict, List, Optional

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(REPO_ROOT, "bench")

# ELECTRA-Small (configure_pretraining/run_finetuning defaults) and the uncased vocabulary.
SMALL = dict(hidden=256, layers=12, heads=4, intermediate=1024, embedding=128, vocab=30522)
GENERATOR_FRACTION = 0.25
MASK_PROB, DISC_WEIGHT, MASK_ID, CLS_ID, SEP_ID = 0.15, 50.0, 103, 101, 102
TASKS = {"pretrain": (128, 32), "sst": (128, 32), "squad": (384, 8),
         "infer1": (128, 1), "infer32": (128, 32), "serve1": (128, 1), "serve32": (128, 32),
         "servexla1": (128, 1), "servexla32": (128, 32)}
QUICK = ["pretrain:fp32", "pretrain:bf16", "sst:fp32", "infer32:fp32"]
FULL = [f"{task}:{dtype}" for task in TASKS for dtype in ("fp32", "bf16")]


# ----------------------------------------------------------------- HF side (torch)


def _torch_setup(threads: int):
  import torch
  torch.set_num_threads(threads)
  torch.manual_seed(0)
  return torch


def _electra_config(hidden: int, heads: int, intermediate: int, **extra):
  from transformers import ElectraConfig
  return ElectraConfig(vocab_size=SMALL["vocab"], embedding_size=SMALL["embedding"],
                       hidden_size=hidden, num_hidden_layers=SMALL["layers"],
                       num_attention_heads=heads, intermediate_size=intermediate,
                       max_position_embeddings=512, **extra)


def _adamw(torch, model, steps: int):
  decay = [p for n, p in model.named_parameters() if not ("bias" in n or "LayerNorm" in n)]
  no_decay = [p for n, p in model.named_parameters() if "bias" in n or "LayerNorm" in n]
  optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                                 {"params": no_decay, "weight_decay": 0.0}],
                                lr=5e-4, eps=1e-6)
  schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 - s / (steps + 10))
  return optimizer, schedule


def _synthetic_ids(torch, batch: int, seq: int):
  gen = torch.Generator().manual_seed(0)
  ids = torch.randint(1000, SMALL["vocab"], (batch, seq), generator=gen)
  ids[:, 0] = CLS_ID
  ids[:, [seq // 2 - 1, seq - 1]] = SEP_ID
  segments = torch.zeros(batch, seq, dtype=torch.long)
  segments[:, seq // 2:] = 1
  return ids, torch.ones(batch, seq, dtype=torch.long), segments


class _HFPretraining:
  """The ELECTRA pre-training step in PyTorch from HF modules (see the module docstring)."""

  def __init__(self, torch, seq: int):
    from transformers import ElectraForMaskedLM, ElectraForPreTraining
    self.torch = torch
    gen_hidden = int(SMALL["hidden"] * GENERATOR_FRACTION)
    self.disc = ElectraForPreTraining(_electra_config(
        SMALL["hidden"], SMALL["heads"], SMALL["intermediate"]))
    self.gen = ElectraForMaskedLM(_electra_config(
        gen_hidden, max(1, gen_hidden // 64), 4 * gen_hidden))
    self.gen.electra.embeddings = self.disc.electra.embeddings  # shared embeddings
    self.gen.generator_lm_head.weight = self.disc.electra.embeddings.word_embeddings.weight
    self.modules = torch.nn.ModuleList([self.disc, self.gen]).train()
    self.max_predictions = int((MASK_PROB + 0.005) * seq)

  def mask(self, ids, input_mask):
    torch = self.torch
    candidates = (input_mask.bool() & (ids != CLS_ID) & (ids != SEP_ID)).float()
    num_tokens = candidates.sum(-1)
    num_predict = torch.clamp(torch.round(num_tokens * MASK_PROB), 1,
                              self.max_predictions).long()
    positions = torch.multinomial(candidates, self.max_predictions)  # no replacement
    weights = (torch.arange(self.max_predictions)[None] < num_predict[:, None]).float()
    originals = torch.gather(ids, 1, positions)
    use_mask = (torch.rand(positions.shape) < 0.85) & weights.bool()
    masked = ids.scatter(1, positions, torch.where(use_mask, MASK_ID, originals))
    return masked, positions, originals, weights

  def loss(self, ids, input_mask, segments):
    torch = self.torch
    masked, positions, originals, weights = self.mask(ids, input_mask)
    hidden = self.gen.electra(masked, attention_mask=input_mask,
                              token_type_ids=segments).last_hidden_state  # [B, S, G]
    gathered = torch.gather(hidden, 1, positions[..., None].expand(-1, -1, hidden.shape[-1]))
    logits = self.gen.generator_lm_head(
        self.gen.generator_predictions(gathered)).float()  # [B, P, V]
    log_probs = torch.log_softmax(logits, -1)
    nll = -torch.gather(log_probs, -1, originals[..., None])[..., 0]
    mlm_loss = (nll * weights).sum() / (weights.sum() + 1e-6)
    with torch.no_grad():  # Gumbel-max sampling, as the original
      uniform = torch.rand(logits.shape)
      gumbel = -torch.log(-torch.log(uniform + 1e-9) + 1e-9)
      sampled = torch.argmax(logits.detach() + gumbel, -1)
      sampled = torch.where(weights.bool(), sampled, originals)
      fake = ids.scatter(1, positions, sampled)
      labels = (fake != ids).float()
    disc_logits = self.disc(fake, attention_mask=input_mask,
                            token_type_ids=segments).logits.float()  # [B, S]
    disc_losses = torch.nn.functional.binary_cross_entropy_with_logits(
        disc_logits, labels, reduction="none")
    mask_f = input_mask.float()
    disc_loss = (disc_losses * mask_f).sum() / (mask_f.sum() + 1e-6)
    return mlm_loss + DISC_WEIGHT * disc_loss


def _hf_train(args) -> Dict[str, object]:
  """Times `args.steps` HF training steps after one (timed as compile_s) first step."""
  torch = _torch_setup(args.threads)
  task = args.config.split(":")[0]
  seq, batch = TASKS[task]
  ids, input_mask, segments = _synthetic_ids(torch, batch, seq)
  if task == "pretrain":
    pre = _HFPretraining(torch, seq)
    model = pre.modules

    def loss_fn():
      return pre.loss(ids, input_mask, segments)
  else:
    from transformers import ElectraForQuestionAnswering, ElectraForSequenceClassification
    config = _electra_config(SMALL["hidden"], SMALL["heads"], SMALL["intermediate"])
    if task == "sst":
      model = ElectraForSequenceClassification(config).train()
      labels = dict(labels=torch.zeros(batch, dtype=torch.long))
    else:
      model = ElectraForQuestionAnswering(config).train()
      labels = dict(start_positions=torch.zeros(batch, dtype=torch.long),
                    end_positions=torch.zeros(batch, dtype=torch.long))

    def loss_fn():
      return model(ids, attention_mask=input_mask, token_type_ids=segments, **labels).loss
  optimizer, schedule = _adamw(torch, model, args.steps + 1)

  def step():
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.dtype == "bf16"):
      loss = loss_fn()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    schedule.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()

  start = time.perf_counter()
  step()
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  for _ in range(args.steps):
    loss = step()
  seconds = time.perf_counter() - start
  return dict(examples_per_sec=args.steps * batch / seconds, compile_s=compile_s,
              step_ms=1000 * seconds / args.steps, final_loss=loss)


def _hf_infer(args) -> Dict[str, object]:
  """Examples/s of an eval-mode forward under inference_mode, outputs copied to numpy."""
  torch = _torch_setup(args.threads)
  from transformers import ElectraForSequenceClassification
  seq, batch = TASKS[args.config.split(":")[0]]
  ids, input_mask, segments = _synthetic_ids(torch, batch, seq)
  model = ElectraForSequenceClassification(_electra_config(
      SMALL["hidden"], SMALL["heads"], SMALL["intermediate"])).eval()

  def forward():
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16,
                                                enabled=args.dtype == "bf16"):
      return model(ids, attention_mask=input_mask, token_type_ids=segments).logits.float().numpy()

  start = time.perf_counter()
  forward()
  compile_s = time.perf_counter() - start
  forward()
  steps = args.steps * 4  # forward passes are short
  start = time.perf_counter()
  for _ in range(steps):
    forward()
  seconds = time.perf_counter() - start
  return dict(examples_per_sec=steps * batch / seconds, compile_s=compile_s,
              step_ms=1000 * seconds / steps)


def _torch_peak(args) -> Dict[str, object]:
  """torch's best FLOP/s of a chain of 8 square matmuls (bench/peak.py's method)."""
  torch = _torch_setup(args.threads)
  size, chain = 2048, 8
  dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
  a = torch.randn(size, size).to(dtype)
  b = (torch.randn(size, size) / size ** 0.5).to(dtype)
  best = float("inf")
  with torch.inference_mode():
    for i in range(6):
      start = time.perf_counter()
      x = a
      for _ in range(chain):
        x = x @ b
      float(x.float().sum())
      if i:  # the first run warms up
        best = min(best, time.perf_counter() - start)
  return dict(peak_flops=2.0 * size ** 3 * chain / best)


def _worker(args) -> None:
  task = args.config.split(":")[0]
  if task == "peak":
    result = _torch_peak(args)
  elif task.startswith(("infer", "serve")):
    result = _hf_infer(args)
  else:
    result = _hf_train(args)
  import torch
  import transformers
  result.update(torch=torch.__version__, transformers=transformers.__version__)
  print(json.dumps(result), flush=True)


# ----------------------------------------------------------------- driver


def _run_json(argv: List[str], timeout: float) -> Optional[dict]:
  """Runs a fresh Python process and returns its last JSON line (None on failure)."""
  try:
    proc = subprocess.run([sys.executable] + argv, capture_output=True, text=True,
                          timeout=timeout, cwd=REPO_ROOT)
  except subprocess.TimeoutExpired:
    print(f"# timed out after {timeout:.0f} s: {' '.join(argv)}", file=sys.stderr)
    return None
  lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
  if proc.returncode or not lines:
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    print(f"# failed ({proc.returncode}): {' '.join(argv)}: {' | '.join(tail)}", file=sys.stderr)
    return None
  return json.loads(lines[-1])


def _ours(config: str, args, peak_flops: float) -> Optional[dict]:
  task, dtype = config.split(":")
  seq, batch = TASKS[task]
  common = ["--dtype", dtype, "--threads", str(args.threads), "--peak-flops", str(peak_flops)]
  if task == "pretrain":
    argv = [os.path.join(BENCH, "pretrain.py"), "--batch-size", str(batch), "--seq-len", str(seq),
            "--steps", str(args.steps), "--warmup", "1",
            "--iterations-per-loop", str(args.steps)] + common
  elif task in ("sst", "squad"):
    argv = [os.path.join(BENCH, "finetune.py"), "--configs", f"{task}:{seq}", "--batch",
            str(batch), "--steps", str(args.steps), "--warmup", "1", "--skip-predict",
            "--skip-postprocessing"] + common
  else:  # infer: ModelRunner.predict_batch; serve: the exported SavedModel's serving_default
    serving = ["--skip-predict", "--serving"] if task.startswith("serve") else []
    if task.startswith("servexla"):
      serving.append("--serving-xla")  # export_model.py --xla
    argv = [os.path.join(BENCH, "finetune.py"), "--configs", f"sst:{seq}", "--batch",
            str(batch), "--steps", str(args.steps * 4), "--skip-train"] + serving + common
  return _run_json(argv, args.timeout)


def _hf(config: str, args) -> Optional[dict]:
  return _run_json([os.path.abspath(__file__), "--worker", "--configs", config,
                    "--threads", str(args.threads), "--steps", str(args.steps)], args.timeout)


def _cpuinfo_ghz(path: str) -> Optional[float]:
  """The first "cpu MHz" of /proc/cpuinfo in GHz, or None."""
  try:
    with open(path) as f:
      match = re.search(r"^cpu MHz\s*:\s*([\d.]+)", f.read(), re.MULTILINE)
  except OSError:
    return None
  return float(match.group(1)) / 1000 if match else None


def nominal_peak_flops(cpuinfo: str = "/proc/cpuinfo") -> Dict[str, Optional[float]]:
  """cores × clock × FLOPs/cycle from lscpu (None where it cannot be computed).

  FLOPs/cycle per core: fp32 64 with AVX-512 (2 FMA units × 16 lanes × 2
  FLOPs per FMA; CPUs with one AVX-512 FMA unit reach half), 32 with AVX2
  only; bf16 1024 with AMX-BF16 (Intel's figure per core), 128 with
  AVX512_BF16 (pairwise dot products), else the fp32 rate. The clock is
  lscpu's max MHz, else the "@ x.xGHz" of the model name, else the "cpu MHz"
  of `cpuinfo` (on virtual machines the host's base clock; turbo is not
  counted, so the measured peak can exceed this nominal one). BogoMIPS is no
  clock and is never used.
  """
  try:
    out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
  except (OSError, subprocess.SubprocessError):
    return {"fp32": None, "bf16": None, "clock_ghz": None}
  fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
  fields = {k.strip(): v.strip() for k, v in fields.items()}
  flags = set(fields.get("Flags", "").split())
  cores = int(fields.get("CPU(s)", "0") or 0)
  clock = None
  if fields.get("CPU max MHz"):
    clock = float(fields["CPU max MHz"]) / 1000
  elif re.search(r"@\s*([\d.]+)GHz", fields.get("Model name", "")):
    clock = float(re.search(r"@\s*([\d.]+)GHz", fields["Model name"]).group(1))
  else:
    clock = _cpuinfo_ghz(cpuinfo)
  if not cores or not clock:
    return {"fp32": None, "bf16": None, "clock_ghz": clock}
  fp32 = 64 if "avx512f" in flags else 32 if "avx2" in flags else None
  bf16 = 1024 if "amx_bf16" in flags else 128 if "avx512_bf16" in flags else fp32
  per_core = cores * clock * 1e9
  return {"fp32": fp32 and fp32 * per_core, "bf16": bf16 and bf16 * per_core,
          "clock_ghz": clock}


def measure_peaks(args, have_torch: bool) -> Dict[str, dict]:
  """Best measured matmul peak per dtype: TF (bench/peak.py) vs torch, fresh processes."""
  dtypes = sorted({config.split(":")[1] for config in args.configs})
  peaks = {}
  for dtype in dtypes:
    tf_peak = _run_json([os.path.join(BENCH, "peak.py"), "--dtype", dtype, "--size", "2048",
                         "--threads", str(args.threads)], args.timeout)
    torch_peak = _run_json([os.path.abspath(__file__), "--worker", "--configs", f"peak:{dtype}",
                            "--threads", str(args.threads)], args.timeout) if have_torch else None
    candidates = {"tensorflow": tf_peak and tf_peak["peak_flops"],
                  "torch": torch_peak and torch_peak["peak_flops"]}
    source = max((k for k, v in candidates.items() if v), key=candidates.get)
    peaks[dtype] = dict(best=candidates[source], source=source, **candidates)
    print(json.dumps(dict(kind="peak", dtype=dtype, size=2048, threads=args.threads,
                          peak_flops_tf=candidates["tensorflow"],
                          peak_flops_torch=candidates["torch"], best_source=source)),
          flush=True)
  return peaks


def _fmt(value, spec: str = ".2f") -> str:
  return "–" if value is None else format(value, spec)


def main(argv: List[str] = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--configs", nargs="+", default=None,
                      help=f"task:dtype items, tasks {sorted(TASKS)} (default: all, fp32+bf16)")
  parser.add_argument("--quick", action="store_true", help=f"{' '.join(QUICK)}, 2 steps")
  parser.add_argument("--steps", type=int, default=None, help="timed steps (default 5; quick 2)")
  parser.add_argument("--threads", type=int, default=2)
  parser.add_argument("--timeout", type=float, default=600, help="seconds per process")
  parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  args.configs = args.configs or (QUICK if args.quick else FULL)
  args.steps = args.steps or (2 if args.quick else 5)
  for config in args.configs:
    task, _, dtype = config.partition(":")
    if task not in TASKS and not (args.worker and task == "peak") or dtype not in ("fp32",
                                                                                   "bf16"):
      parser.error(f"bad config {config!r}: use task:dtype, task in {sorted(TASKS)}, "
                   "dtype fp32 or bf16")
  if args.worker:
    args.config, args.dtype = args.configs[0], args.configs[0].split(":")[1]
    _worker(args)
    return
  try:
    import torch  # noqa: F401
    import transformers  # noqa: F401
    have_torch = True
  except ImportError:
    have_torch = False
    print("# torch/transformers not installed: HF side skipped (pip install torch==2.13.0 "
          "transformers)", file=sys.stderr)
  nominal = nominal_peak_flops()
  peaks = measure_peaks(args, have_torch)
  rows = []
  for config in args.configs:
    task, dtype = config.split(":")
    seq, batch = TASKS[task]
    peak = peaks[dtype]
    ours = _ours(config, args, peak["best"])
    hf = _hf(config, args) if have_torch else None
    flops = ours and ours.get("model_flops_per_example")
    row = dict(kind="compare", config=config, task=task, dtype=dtype, seq=seq, batch=batch,
               threads=args.threads, steps=args.steps,
               device=ours and ours.get("device"),
               ours_examples_per_sec=ours and ours["examples_per_sec"],
               hf_examples_per_sec=hf and hf["examples_per_sec"],
               ratio=(ours and hf) and ours["examples_per_sec"] / hf["examples_per_sec"],
               ours_compile_s=ours and ours.get("compile_s"),
               hf_compile_s=hf and hf["compile_s"],
               ours_mfu=flops and flops * ours["examples_per_sec"] / peak["best"],
               hf_mfu=(flops and hf) and flops * hf["examples_per_sec"] / peak["best"],
               peak_flops=peak["best"], peak_source=peak["source"],
               ours_mfu_nominal=(flops and nominal[dtype]) and
               flops * ours["examples_per_sec"] / nominal[dtype],
               nominal_peak_flops=nominal[dtype], model_flops_per_example=flops,
               hf_versions=hf and f"transformers {hf['transformers']}, torch {hf['torch']}")
    print(json.dumps(row), flush=True)
    rows.append(row)
  print()
  print(f"{rows[0]['device'] if rows else ''}, {args.threads} threads, {time.strftime('%Y-%m-%d')}")
  print()
  print("| step | dtype | this project ex/s | HF PyTorch ex/s | ratio | warm-up s (ours / HF) "
        "| MFU ours / HF (vs best peak) |")
  print("| --- | --- | --- | --- | --- | --- | --- |")
  names = {"pretrain": "pre-training, seq 128, batch 32", "sst": "fine-tune sst, seq 128, batch 32",
           "squad": "fine-tune squad, seq 384, batch 8", "infer1": "inference, seq 128, batch 1",
           "infer32": "inference, seq 128, batch 32",
           "serve1": "SavedModel serving, seq 128, batch 1",
           "serve32": "SavedModel serving, seq 128, batch 32",
           "servexla1": "SavedModel serving (--xla), seq 128, batch 1",
           "servexla32": "SavedModel serving (--xla), seq 128, batch 32"}
  for row in rows:
    mfu = (f"{_fmt(row['ours_mfu'] and 100 * row['ours_mfu'], '.0f')}% / "
           f"{_fmt(row['hf_mfu'] and 100 * row['hf_mfu'], '.0f')}%")
    print(f"| {names[row['task']]} | {row['dtype']} | {_fmt(row['ours_examples_per_sec'])} | "
          f"{_fmt(row['hf_examples_per_sec'])} | {_fmt(row['ratio'])}× | "
          f"{_fmt(row['ours_compile_s'], '.1f')} / {_fmt(row['hf_compile_s'], '.1f')} | {mfu} |")
  print()
  for dtype, peak in peaks.items():
    tf_gflops = peak["tensorflow"] and peak["tensorflow"] / 1e9
    torch_gflops = peak["torch"] and peak["torch"] / 1e9
    nominal_gflops = nominal[dtype] and nominal[dtype] / 1e9
    print(f"- {dtype} matmul peak n=2048: TF {_fmt(tf_gflops, '.0f')} GFLOP/s, torch "
          f"{_fmt(torch_gflops, '.0f')} GFLOP/s (best: {peak['source']}); nominal "
          f"{_fmt(nominal_gflops, '.0f')} GFLOP/s")

if __name__ == "__main__":
  main()
