"""Learning-rate schedule, layer-wise LR decay, AdamWeightDecay and gradient clipping.

TF2 re-implementation of the original `model/optimization.py` (see docs/model.md#optimizer):

* `learning_rate_schedule`: polynomial decay to 0 over `num_train_steps`,
  multiplied by a linear warm-up ramp `min(1, step / W)`; LR at step 0 is 0.
* `layerwise_lr_multipliers`: per-variable LR factors `decay^(n+2-depth)` for
  fine-tuning (the original's off-by-one by default, `fix_top_layer` fixes it).
* `AdamWeightDecay`: Adam without bias correction, ε = 1e-6, decoupled weight
  decay; dense updates; slots `<name>/adam_m`, `<name>/adam_v`.
* `clip_by_global_norm`: one global norm over all gradients (1.0 in the original).
* `create_optimizer` / `create_pretraining_optimizer` /
  `create_finetuning_optimizer`: the bundle (schedule + multipliers + clipping +
  Adam) that the trainers use.

How a trainer calls it (single device, or inside `strategy.run`):

```python
opt = create_pretraining_optimizer(config, variables)   # under strategy.scope()
grads = tape.gradient(loss, list(variables.values()))
grads = all_reduce_gradients(grads)                      # identity without a strategy
info = opt.apply_gradients(grads, global_step)           # clip + schedule + Adam
global_step.assign_add(1)
```

`global_step` is read *before* its increment, like the original's train op.
Variables and slots are float32; gradients of any float dtype are cast to
float32 first (mixed precision).
"""
from __future__ import annotations

import logging
import re
from typing import Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union

import tensorflow as tf

logger = logging.getLogger("electra")

Gradient = Optional[Union[tf.Tensor, tf.IndexedSlices]]


# --------------------------------------------------------------------------- schedule


def learning_rate_schedule(step: Union[int, tf.Tensor], learning_rate: float,
                           num_train_steps: int, warmup_steps: int = 0,
                           warmup_proportion: float = 0.0,
                           lr_decay_power: float = 1.0) -> tf.Tensor:
  """The original's learning rate at a global step (see docs/model.md#learning-rate-schedule).

  `decayed(t) = learning_rate · (1 - min(t, T)/T)^lr_decay_power` with
  `T = num_train_steps`, then multiplied by the warm-up factor `min(1, t/W)`,
  `W = max(T · warmup_proportion, warmup_steps)`. The ramp multiplies the
  already-decayed curve, so `lr(0) = 0` and `lr(W) = decayed(W) < learning_rate`.

  Fix (README "differences"): with `W == 0` the original computes `min(1, 0/0)`,
  a NaN at step 0 that can poison the first update
  (docs/model.md#quirks-and-differences-from-the-original); here the warm-up factor is simply 1. The
  CLIs' defaults never have `W == 0`.

  Args:
    step: int or integer/float scalar tensor (e.g. the int64 `global_step`),
      the step count *before* this step's increment.
    learning_rate: peak learning rate.
    num_train_steps: T, the step at which the rate reaches 0. With 0 the rate
      is 0 (nothing to train); the original divided by zero.
    warmup_steps: warm-up length in steps (pre-training: `num_warmup_steps`).
    warmup_proportion: warm-up length as a fraction of T (fine-tuning: 0.1).
    lr_decay_power: power of the polynomial decay (1 = linear).

  Returns:
    float32 scalar tensor. Works eagerly, in `tf.function` and under XLA.

  Raises:
    ValueError: negative `num_train_steps`, `warmup_steps` or `warmup_proportion`.
  """
  for hparam, value in (("num_train_steps", num_train_steps), ("warmup_steps", warmup_steps),
                        ("warmup_proportion", warmup_proportion)):
    if value < 0:
      raise ValueError(f"{hparam} must be >= 0, got {value}.")
  t = tf.cast(step, tf.float32)
  if num_train_steps == 0:
    return tf.zeros([], tf.float32)
  total = tf.constant(float(num_train_steps), tf.float32)
  # tf.train.polynomial_decay(end_learning_rate=0, cycle=False), computed in float32.
  fraction_left = 1.0 - tf.minimum(t, total) / total
  lr = tf.constant(learning_rate, tf.float32) * tf.pow(fraction_left, float(lr_decay_power))
  warmup = max(num_train_steps * warmup_proportion, warmup_steps)  # a Python number
  if warmup > 0:
    lr *= tf.minimum(1.0, t / tf.constant(float(warmup), tf.float32))
  return lr


# --------------------------------------------------------------------------- layer-wise decay


def _layer_depths(n_transformer_layers: int, fix_top_layer: bool) -> Dict[str, int]:
  """The original's `key_to_depths` (docs/model.md#layer-wise-learning-rate-decay); `fix_top_layer`
  moves the head to n+1."""
  depths = {
      "/embeddings/": 0,
      "/embeddings_project/": 0,
      "task_specific/": n_transformer_layers + (1 if fix_top_layer else 2),
  }
  for layer in range(n_transformer_layers):
    depths[f"encoder/layer_{layer}/"] = layer + 1
  return depths


def layerwise_lr_multipliers(variable_names: Iterable[str], layerwise_lr_decay: float,
                             n_transformer_layers: Optional[int],
                             fix_top_layer: bool = False) -> Dict[str, float]:
  """Per-variable learning-rate multipliers for fine-tuning (see
  docs/model.md#layer-wise-learning-rate-decay).

  A variable belongs to the key that is a substring of its name: `/embeddings/`
  and `/embeddings_project/` (depth 0), `encoder/layer_<k>/` (depth k+1; the
  trailing `/` keeps `layer_1/` from matching `layer_10/`) and `task_specific/`.

  Default (the original, a faithful quirk): the head is at depth n+2 and the
  multiplier is `decay^(n+2-depth)`, so depth n+1 is never used and the top
  encoder layer gets `decay²`. With `fix_top_layer=True` (hparam
  `fix_layerwise_lr_decay`) the head is at depth n+1: the top layer gets
  `decay¹`, the embeddings `decay^(n+1)`, the head 1.

  Args:
    variable_names: checkpoint names of the trainable variables.
    layerwise_lr_decay: the decay factor (`layerwise_lr_decay` hparam);
      <= 0 disables layer-wise decay (every multiplier is 1.0).
    n_transformer_layers: number of encoder layers actually built.
    fix_top_layer: use the corrected depth rule (see above).

  Returns:
    {variable name: multiplier}, in the order of `variable_names`.

  Raises:
    ValueError: decay enabled without `n_transformer_layers`; a variable that
      matches no key (as the original: "No learning rate specified for
      variable"); a variable matching several keys. The original would update
      such a variable once per key, but its second slot creation fails
      (`<name>/adam_m` already exists), so it never trained; we say why early.
  """
  names = list(variable_names)
  if layerwise_lr_decay <= 0:
    return {name: 1.0 for name in names}
  if n_transformer_layers is None or n_transformer_layers < 0:
    raise ValueError(
        "layerwise_lr_decay > 0 needs n_transformer_layers (the number of encoder layers "
        f"built), got {n_transformer_layers!r}. Pass bert_config.num_hidden_layers, or set "
        "layerwise_lr_decay <= 0 to disable layer-wise decay.")
  depths = _layer_depths(n_transformer_layers, fix_top_layer)
  top = n_transformer_layers + (1 if fix_top_layer else 2)
  multipliers = {}
  for name in names:
    keys = [key for key in depths if key in name]
    if not keys:
      raise ValueError(
          f"No learning rate specified for variable {name}: layer-wise LR decay needs every "
          f"trainable variable to contain one of {list(depths)} (n_transformer_layers="
          f"{n_transformer_layers}). Check n_transformer_layers and the variable scopes, or set "
          "layerwise_lr_decay <= 0.")
    if len(keys) > 1:
      raise ValueError(
          f"Variable {name} matches several layer-wise LR keys {keys}; the original would "
          "create its Adam slots twice and fail. Rename the scope (e.g. a task named "
          "'embeddings') so that it matches exactly one key.")
    multipliers[name] = float(layerwise_lr_decay) ** (top - depths[keys[0]])
  return multipliers


# --------------------------------------------------------------------------- gradients


def _densify(grad: Union[tf.Tensor, tf.IndexedSlices],
             shape: Optional[tf.TensorShape] = None) -> tf.Tensor:
  """float32 dense gradient; IndexedSlices rows are summed (duplicates add up)."""
  if isinstance(grad, tf.IndexedSlices):
    values = tf.cast(grad.values, tf.float32)
    if shape is not None and shape.rank and shape[0] is not None:
      return tf.math.unsorted_segment_sum(values, grad.indices, shape[0])
    if grad.dense_shape is None:
      raise ValueError(f"Cannot densify an IndexedSlices gradient without dense_shape: {grad}.")
    return tf.convert_to_tensor(
        tf.IndexedSlices(values, grad.indices, grad.dense_shape))
  return tf.cast(grad, tf.float32)


def _global_norm(dense: Sequence[Optional[tf.Tensor]]) -> tf.Tensor:
  """sqrt of the sum of squares of all present float32 gradients (0 if none).

  `l2_loss` (Σg²/2, exact halving) is one pass and one graph node per
  gradient; square-then-sum writes a full temporary of every gradient.
  """
  halves = [tf.nn.l2_loss(g) for g in dense if g is not None]
  return tf.sqrt(2.0 * tf.add_n(halves)) if halves else tf.zeros([], tf.float32)


def clip_by_global_norm(grads: Sequence[Gradient], clip_norm: float = 1.0
                        ) -> Tuple[List[Optional[tf.Tensor]], tf.Tensor]:
  """Scales all gradients by one factor so their joint L2 norm is <= clip_norm
  (docs/model.md#gradient-clipping).

  Same formula as `tf.clip_by_global_norm`: each gradient is multiplied by
  `clip_norm / max(global_norm, clip_norm)`, and a non-finite global norm makes
  every gradient NaN (so a fp16 overflow cannot slip through as a small step).

  Difference from the original on GPU/CPU (README): `IndexedSlices` are
  densified first, so the norm is that of the true gradient with duplicate
  rows summed. TF's own function sums the squares of the *unsummed* slices;
  the original on TPU used one-hot embeddings (dense gradients) and agrees
  with us.

  Args:
    grads: gradients aligned with the variables; None entries are kept as None.
    clip_norm: positive clipping threshold.

  Returns:
    (clipped gradients as dense float32 tensors or None, float32 global norm
    before clipping).

  Raises:
    ValueError: `clip_norm` not positive.
  """
  if clip_norm <= 0:
    raise ValueError(f"clip_norm must be positive, got {clip_norm}.")
  dense = [None if g is None else _densify(g) for g in grads]
  global_norm = _global_norm(dense)
  scale = clip_norm * tf.minimum(1.0 / global_norm, 1.0 / clip_norm)
  scale += global_norm - global_norm  # NaN for an inf/NaN norm, a no-op otherwise
  return [None if g is None else g * scale for g in dense], global_norm


def all_reduce_gradients(grads: Sequence[Gradient]) -> List[Optional[tf.Tensor]]:
  """Sums per-replica gradients over the replicas (call inside `strategy.run`).

  The original summed gradients across TPU cores (CrossShardOptimizer,
  docs/model.md#gradient-clipping); scale the per-replica loss accordingly (e.g. divide a mean by
  the number of replicas). Gradients are densified and cast to float32; None stays None.
  Without a strategy (or with one replica) the values are unchanged.

  Args:
    grads: this replica's gradients, aligned with the variables.

  Returns:
    The summed dense float32 gradients, identical on every replica.

  Raises:
    ValueError: called in cross-replica context of a strategy.
  """
  dense = [None if g is None else _densify(g) for g in grads]
  if not tf.distribute.has_strategy():
    return dense
  if tf.distribute.in_cross_replica_context():
    raise ValueError("all_reduce_gradients must be called in replica context, i.e. inside the "
                     "function passed to strategy.run.")
  present = [g for g in dense if g is not None]
  if not present:
    return dense
  reduced = iter(tf.distribute.get_replica_context().all_reduce(
      tf.distribute.ReduceOp.SUM, present))
  return [None if g is None else next(reduced) for g in dense]


# --------------------------------------------------------------------------- Adam


class AdamWeightDecay(tf.Module):
  """The original's `AdamWeightDecayOptimizer` over named variables (see docs/model.md#adamw).

  Per variable with a gradient `g` (None gradients are skipped):

      m ← β1·m + (1-β1)·g,   v ← β2·v + (1-β2)·g²          (no bias correction)
      u = m / (sqrt(v) + ε) [+ wd·θ if wd > 0 and the name is not excluded]
      θ ← θ - lr·multiplier·u

  Updates are dense: `IndexedSlices` (embedding gathers) are densified, so
  every embedding row gets its moments decayed and weight decay at every step,
  as in the original. Exclusion is a regex *search* on the checkpoint name, so
  LayerNorm β/γ, every `bias` and `output_bias` are not decayed but embedding
  tables are.

  Slots are created eagerly in the constructor as float32 zeros named
  `<name>/adam_m` and `<name>/adam_v`. Under a `tf.distribute` strategy,
  construct the optimizer inside the same `strategy.scope()` as the variables
  (slots are then mirrored and colocated with their variable).

  `apply_gradients` may be called (inside `tf.function`, with or without
  `jit_compile`):
  * without a strategy: plain assignments;
  * in replica context (inside `strategy.run`) with gradients that are already
    the global gradient on every replica (see `all_reduce_gradients`): it
    switches to cross-replica context with `merge_call` and updates each
    variable copy through `strategy.extended.update`;
  * in cross-replica context (inside `strategy.scope()`, outside
    `strategy.run`) with plain tensors: every copy gets the same update.
  It does not increment `global_step`; the trainer does.

  Args:
    variables: {checkpoint name: float32 tf.Variable}, e.g.
      `model.trainable_named_variables()`; gradients are aligned with its order.
    weight_decay_rate: decoupled weight decay; <= 0 disables it (the original).
    beta_1: first-moment decay.
    beta_2: second-moment decay.
    epsilon: added to sqrt(v).
    exclude_from_weight_decay: regexes; a name matching any is not decayed.
    lr_multipliers: optional {name: factor} for every variable (layer-wise decay).
    name: tf.Module name.

  Raises:
    ValueError: non-float32 variable, multipliers that do not cover exactly
      the variables, or a strategy mismatch.
  """

  def __init__(self, variables: Dict[str, tf.Variable], weight_decay_rate: float = 0.0,
               beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-6,
               exclude_from_weight_decay: Sequence[str] = ("LayerNorm", "layer_norm", "bias"),
               lr_multipliers: Optional[Dict[str, float]] = None,
               name: str = "AdamWeightDecay"):
    super().__init__(name=name)
    self.weight_decay_rate = weight_decay_rate
    self.beta_1 = beta_1
    self.beta_2 = beta_2
    self.epsilon = epsilon
    self.exclude_from_weight_decay = tuple(exclude_from_weight_decay or ())
    self._names = list(variables)
    self._variables = [variables[n] for n in self._names]
    for var_name, variable in zip(self._names, self._variables):
      if variable.dtype != tf.float32:
        raise ValueError(f"AdamWeightDecay keeps float32 variables and slots; {var_name} is "
                         f"{variable.dtype.name}. Create variables in float32 and cast in compute.")
    self._multipliers = self._check_multipliers(lr_multipliers)
    self._decayed = [self._do_use_weight_decay(n) for n in self._names]
    self._m = [_create_slot(v, f"{n}/adam_m") for n, v in zip(self._names, self._variables)]
    self._v = [_create_slot(v, f"{n}/adam_v") for n, v in zip(self._names, self._variables)]
    logger.info("AdamWeightDecay: %d variables, weight decay %s on %d of them",
                len(self._names), weight_decay_rate, sum(self._decayed))

  def _check_multipliers(self, lr_multipliers: Optional[Dict[str, float]]) -> List[float]:
    """One float per variable; the dict must name exactly the optimizer's variables."""
    if lr_multipliers is None:
      return [1.0] * len(self._names)
    missing = [n for n in self._names if n not in lr_multipliers]
    unknown = sorted(set(lr_multipliers) - set(self._names))
    if missing or unknown:
      raise ValueError(f"lr_multipliers must name every optimized variable exactly: missing "
                       f"{missing[:5]} ({len(missing)}), unknown {unknown[:5]} ({len(unknown)}). "
                       "Build them with layerwise_lr_multipliers(variables.keys(), ...).")
    return [float(lr_multipliers[n]) for n in self._names]

  def _do_use_weight_decay(self, name: str) -> bool:
    """The original's rule: wd > 0 and no exclusion regex found in the name."""
    if not self.weight_decay_rate > 0:
      return False
    return not any(re.search(r, name) is not None for r in self.exclude_from_weight_decay)

  @property
  def variable_names(self) -> List[str]:
    """Names of the optimized variables, in gradient order."""
    return list(self._names)

  def lr_multiplier(self, name: str) -> float:
    """The learning-rate multiplier of one variable.

    Args:
      name: checkpoint name of an optimized variable.

    Returns:
      The factor applied to the base learning rate (1.0 without layer-wise decay).
    """
    return self._multipliers[self._names.index(name)]

  def uses_weight_decay(self, name: str) -> bool:
    """Whether one variable gets decoupled weight decay.

    Args:
      name: checkpoint name of an optimized variable.

    Returns:
      True when weight_decay_rate > 0 and no exclusion regex is found in `name`.
    """
    return self._decayed[self._names.index(name)]

  def named_slot_variables(self) -> Dict[str, tf.Variable]:
    """{`<name>/adam_m` | `<name>/adam_v`: slot}, sorted by name (checkpoint contract)."""
    slots = {}
    for name, m, v in zip(self._names, self._m, self._v):
      slots[f"{name}/adam_m"] = m
      slots[f"{name}/adam_v"] = v
    return dict(sorted(slots.items()))

  def apply_gradients(self, grads: Sequence[Gradient],
                      learning_rate: Union[float, tf.Tensor]) -> None:
    """Applies one Adam step.

    Args:
      grads: one gradient per variable in constructor order (any float dtype,
        dense or IndexedSlices, or None to skip the variable). Under a
        strategy: the global gradient, identical on every replica.
      learning_rate: float32 scalar, the base rate (multipliers applied here).

    Raises:
      ValueError: wrong number of gradients.
    """
    grads = list(grads)
    if len(grads) != len(self._variables):
      raise ValueError(f"Got {len(grads)} gradients for {len(self._variables)} variables; pass "
                       "one gradient (or None) per variable, in the order of `variables`.")
    indices = [i for i, g in enumerate(grads) if g is not None]
    dense = [_densify(grads[i], self._variables[i].shape) for i in indices]
    learning_rate = tf.cast(learning_rate, tf.float32)
    if not tf.distribute.has_strategy():
      constants = self._adam_constants()
      for i, grad in zip(indices, dense):
        update = self._update_fn(i, constants)
        update(self._variables[i], self._m[i], self._v[i], grad, learning_rate)
    elif tf.distribute.in_cross_replica_context():
      self._apply_cross_replica(tf.distribute.get_strategy(), indices, dense, learning_rate)
    else:
      # `indices` stay in the closure: merge_call would regroup Python values.
      tf.distribute.get_replica_context().merge_call(
          lambda strategy, *args: self._apply_cross_replica(strategy, indices, *args),
          args=(dense, learning_rate))

  def _apply_cross_replica(self, strategy: tf.distribute.Strategy, indices: List[int],
                           dense: List[tf.Tensor], learning_rate: tf.Tensor) -> None:
    """Updates every copy of each variable with its replica's (identical) gradient."""
    constants = self._adam_constants()
    for i, grad in zip(indices, dense):
      # The slots are passed whole: inside an update context, reading and
      # assigning a mirrored slot touches the copy on the variable's device.
      strategy.extended.update(self._variables[i], self._update_fn(i, constants),
                               args=(self._m[i], self._v[i], grad, learning_rate), group=False)

  def _update_fn(self, i: int, constants: Tuple[tf.Tensor, ...]
                 ) -> Callable[..., tf.Operation]:
    """The update of variable `i` as fn(var, m, v, grad, lr) (docs/model.md#adamw).

    One fused `ResourceApplyAdam` kernel does the moments and the Adam step:
    with both bias-correction powers at 0 its step size is exactly `lr`, so it
    computes the original's formula (no bias correction) in one pass over the
    variable instead of ~10 separate element-wise ops (less work per step and
    a ~4x smaller optimizer graph to trace and optimize). Weight decay, which
    uses the variable's value *before* the step, is subtracted after it:
    θ - lr·(adam + wd·θ) = (θ - lr·adam) - lr·wd·θ.
    """
    multiplier, decayed = self._multipliers[i], self._decayed[i]

    def update(var, m, v, grad, learning_rate):
      lr = learning_rate * multiplier if multiplier != 1.0 else learning_rate
      decay = (lr * self.weight_decay_rate) * var if decayed else None  # read before the step
      no_correction, beta_1, beta_2, epsilon = constants
      step = tf.raw_ops.ResourceApplyAdam(
          var=var.handle, m=m.handle, v=v.handle, beta1_power=no_correction,
          beta2_power=no_correction, lr=lr, beta1=beta_1, beta2=beta_2, epsilon=epsilon, grad=grad)
      if decay is None:
        return step
      with tf.control_dependencies([step]):
        return var.assign_sub(decay)
    return update

  def _adam_constants(self) -> Tuple[tf.Tensor, ...]:
    """(0, β1, β2, ε) as float32 tensors, made once per step for all variables' updates."""
    return tuple(tf.constant(c, tf.float32) for c in (0.0, self.beta_1, self.beta_2, self.epsilon))


def _create_slot(variable: tf.Variable, name: str) -> tf.Variable:
  """A float32 zeros slot on the variable's device(s), outside any tf.function."""
  with tf.init_scope():
    make = lambda: tf.Variable(tf.zeros(variable.shape, tf.float32), trainable=False, name=name)
    if tf.distribute.has_strategy():
      strategy = tf.distribute.get_strategy()
      if not strategy.extended.variable_created_in_scope(variable):
        raise ValueError(f"Variable {name.rsplit('/', 1)[0]} was not created under the active "
                         "tf.distribute strategy; build the model and the optimizer inside the "
                         "same strategy.scope().")
      with strategy.extended.colocate_vars_with(variable):
        return make()
    if isinstance(variable, tf.distribute.DistributedValues):
      raise ValueError(f"Variable {name.rsplit('/', 1)[0]} is distributed; construct the "
                       "optimizer inside the strategy.scope() that created it.")
    with tf.device(variable.device):
      return make()


# --------------------------------------------------------------------------- bundle


class StepInfo(NamedTuple):
  """What one optimizer step reports (for logging and summaries)."""
  learning_rate: tf.Tensor  # float32 scalar, base LR before layer-wise multipliers
  grad_norm: tf.Tensor      # float32 scalar, global norm before clipping


class ElectraOptimizer(tf.Module):
  """Schedule + global-norm clipping + `AdamWeightDecay`: the original's train op.

  Args:
    adam: the optimizer (holds variables, slots, multipliers).
    schedule: maps the global step (before increment) to the base LR.
    clip_norm: global-norm clipping threshold (1.0 in the original); None disables.
  """

  def __init__(self, adam: AdamWeightDecay, schedule: Callable[[tf.Tensor], tf.Tensor],
               clip_norm: Optional[float] = 1.0):
    super().__init__(name="ElectraOptimizer")
    self.adam = adam
    self._schedule = schedule
    self.clip_norm = clip_norm

  def learning_rate(self, step: Union[int, tf.Tensor]) -> tf.Tensor:
    """Base learning rate at a global step.

    Args:
      step: the global step before this step's increment.

    Returns:
      float32 scalar, before layer-wise multipliers.
    """
    return self._schedule(step)

  def named_slot_variables(self) -> Dict[str, tf.Variable]:
    """The Adam slots by checkpoint name."""
    return self.adam.named_slot_variables()

  def apply_gradients(self, grads: Sequence[Gradient], step: Union[int, tf.Tensor],
                      lr_scale: Optional[tf.Tensor] = None) -> StepInfo:
    """Clips `grads` (global norm), then applies Adam at the LR of `step`.

    Args:
      grads: one gradient (or None) per variable; under a strategy the global
        (all-reduced) gradient, see `all_reduce_gradients`.
      step: the global step before this step's increment.
      lr_scale: optional float32 scalar multiplying the LR; 0 leaves the weights
        unchanged (the fp16 trainer passes 0 for an overflowed step, whose
        gradients it has zeroed; the moments then decay by one step).

    Returns:
      StepInfo(learning_rate, grad_norm).
    """
    learning_rate = self._schedule(step)
    if lr_scale is not None:
      learning_rate = learning_rate * tf.cast(lr_scale, tf.float32)
    if self.clip_norm is not None:
      grads, grad_norm = clip_by_global_norm(grads, self.clip_norm)
    else:
      grads = [None if g is None else _densify(g) for g in grads]
      grad_norm = _global_norm(grads)
    self.adam.apply_gradients(grads, learning_rate)
    return StepInfo(learning_rate, grad_norm)


def create_optimizer(variables: Dict[str, tf.Variable], learning_rate: float,
                     num_train_steps: int, weight_decay_rate: float = 0.0,
                     warmup_steps: int = 0, warmup_proportion: float = 0.0,
                     lr_decay_power: float = 1.0, layerwise_lr_decay_power: float = -1.0,
                     n_transformer_layers: Optional[int] = None,
                     fix_layerwise_lr_decay: bool = False,
                     clip_norm: Optional[float] = 1.0) -> ElectraOptimizer:
  """The original's `create_optimizer` arguments, returning an `ElectraOptimizer`
  (docs/model.md#optimizer).

  β1 = 0.9, β2 = 0.999, ε = 1e-6 and the exclusions LayerNorm / layer_norm /
  bias are fixed, as in the original.

  Args:
    variables: {checkpoint name: variable} of the trainable variables.
    learning_rate: peak learning rate.
    num_train_steps: steps until the LR reaches 0.
    weight_decay_rate: decoupled weight decay.
    warmup_steps: warm-up steps.
    warmup_proportion: warm-up as a fraction of `num_train_steps`.
    lr_decay_power: polynomial decay power.
    layerwise_lr_decay_power: layer-wise decay factor (the original's name);
      <= 0 disables.
    n_transformer_layers: encoder layers, needed with layer-wise decay.
    fix_layerwise_lr_decay: top encoder layer gets decay¹ instead of decay².
    clip_norm: global-norm clipping threshold; None disables.

  Returns:
    The optimizer bundle; its slots exist already.
  """
  multipliers = None
  if layerwise_lr_decay_power > 0:
    multipliers = layerwise_lr_multipliers(variables.keys(), layerwise_lr_decay_power,
                                           n_transformer_layers, fix_layerwise_lr_decay)
  # Validate the schedule arguments now rather than at the first step.
  learning_rate_schedule(0, learning_rate, num_train_steps, warmup_steps, warmup_proportion,
                         lr_decay_power)

  def schedule(step):
    return learning_rate_schedule(step, learning_rate, num_train_steps, warmup_steps,
                                  warmup_proportion, lr_decay_power)

  adam = AdamWeightDecay(variables, weight_decay_rate=weight_decay_rate, beta_1=0.9,
                         beta_2=0.999, epsilon=1e-6,
                         exclude_from_weight_decay=("LayerNorm", "layer_norm", "bias"),
                         lr_multipliers=multipliers)
  return ElectraOptimizer(adam, schedule, clip_norm)


def create_pretraining_optimizer(config, variables: Dict[str, tf.Variable]) -> ElectraOptimizer:
  """The pre-training optimizer from a `PretrainingConfig` (run_pretraining's call).

  Args:
    config: reads `learning_rate`, `num_train_steps`, `weight_decay_rate`,
      `num_warmup_steps`, `lr_decay_power`.
    variables: all trainable variables (generator and discriminator).

  Returns:
    The optimizer bundle (no layer-wise decay, warm-up in steps).
  """
  return create_optimizer(variables, config.learning_rate, config.num_train_steps,
                          weight_decay_rate=config.weight_decay_rate,
                          warmup_steps=config.num_warmup_steps,
                          lr_decay_power=config.lr_decay_power)


def create_finetuning_optimizer(config, variables: Dict[str, tf.Variable], num_train_steps: int,
                                n_transformer_layers: int) -> ElectraOptimizer:
  """The fine-tuning optimizer from a `FinetuningConfig` (docs/finetuning.md#the-fine-tuning-model).

  Args:
    config: reads `learning_rate`, `weight_decay_rate`, `warmup_proportion`,
      `layerwise_lr_decay`, `fix_layerwise_lr_decay`.
    variables: trainable variables (`electra/...` and `task_specific/...`).
    num_train_steps: derived by the trainer from the data size and epochs.
    n_transformer_layers: `bert_config.num_hidden_layers` after debug overrides.

  Returns:
    The optimizer bundle (linear decay, warm-up as a proportion, layer-wise decay).
  """
  return create_optimizer(variables, config.learning_rate, num_train_steps,
                          weight_decay_rate=config.weight_decay_rate,
                          warmup_proportion=config.warmup_proportion,
                          layerwise_lr_decay_power=config.layerwise_lr_decay,
                          n_transformer_layers=n_transformer_layers,
                          fix_layerwise_lr_decay=config.fix_layerwise_lr_decay)
