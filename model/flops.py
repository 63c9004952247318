"""Training FLOPs of ELECTRA and the models the paper compares against.

The original `flops_computation.py`'s formula (see docs/model.md#flops-estimate): a per-token
count of every matmul and element-wise op of a transformer, with the original's
constants and simplifications (the backward pass is counted as equal to the
forward pass, so training = 2 × forward). `flops_computation.py` prints the
paper's table; the benchmarks and experiments use
`electra_pretraining_flops_per_example` for model FLOP utilisation.
"""
from __future__ import annotations

import dataclasses
from typing import Dict, Optional

DROPOUT_FLOPS = 4
LAYER_NORM_FLOPS = 5
ACTIVATION_FLOPS = 8
SOFTMAX_FLOPS = 5


@dataclasses.dataclass
class TransformerHparams:
  """Size of one transformer, as the original script describes it.

  h: hidden size; l: layers; s: sequence length; v: vocab size; e: embedding
  size (None: h); i: intermediate size (None: 4h); heads (None: max(h // 64, 1));
  head_size (None: h / heads, i.e. kqv = h); output_frac: fraction of tokens
  with an output softmax (MLM: 0.15625); sparse_embed_lookup: gather instead of
  a one-hot matmul; decoder: attention counted twice (self + cross).
  """
  h: int
  l: int
  s: int = 512
  v: int = 30522
  e: Optional[int] = None
  i: Optional[int] = None
  heads: Optional[int] = None
  head_size: Optional[int] = None
  output_frac: float = 0.15625
  sparse_embed_lookup: bool = False
  decoder: bool = False

  def __post_init__(self):
    self.e = self.h if self.e is None else self.e
    self.i = 4 * self.h if self.i is None else self.i
    self.heads = max(self.h // 64, 1) if self.heads is None else self.heads
    self.kqv = self.h if self.head_size is None else self.head_size * self.heads
    self.attn_mul = 2 if self.decoder else 1

  def get_block_flops(self) -> float:
    """FLOPs of one transformer layer over the whole sequence."""
    h, s, i, heads, kqv, m = self.h, self.s, self.i, self.heads, self.kqv, self.attn_mul
    per_token = dict(
        kqv=3 * 2 * h * kqv * m,
        kqv_bias=3 * kqv * m,
        attention_scores=2 * kqv * s * m,
        attn_softmax=SOFTMAX_FLOPS * s * heads * m,
        attention_dropout=DROPOUT_FLOPS * s * heads * m,
        attention_scale=s * heads * m,
        attention_weighted_avg_values=2 * h * s * m,
        attn_output=2 * h * h * m,
        attn_output_bias=h * m,
        attn_output_dropout=DROPOUT_FLOPS * h * m,
        attn_output_residual=h * m,
        attn_output_layer_norm=LAYER_NORM_FLOPS * m,  # sic: not × h, as the original
        intermediate=2 * h * i,
        intermediate_act=ACTIVATION_FLOPS * i,
        intermediate_bias=i,
        output=2 * h * i,
        output_bias=h,
        output_dropout=DROPOUT_FLOPS * h,
        output_residual=h,
        output_layer_norm=LAYER_NORM_FLOPS * h,
    )
    return sum(per_token.values()) * s

  def get_embedding_flops(self, output: bool = False) -> float:
    """FLOPs of the input embeddings, or of the MLM output layer if `output`."""
    h, s, v, e = self.h, self.s, self.v, self.e
    per_token: Dict[str, float] = {}
    if output or not self.sparse_embed_lookup:
      per_token["main_multiply"] = 2 * e * v
    if output:
      per_token.update(
          hidden_kernel=2 * h * e,
          hidden_bias=e,
          hidden_activation=ACTIVATION_FLOPS * e,
          hidden_layernorm=LAYER_NORM_FLOPS * e,
          output_softmax=SOFTMAX_FLOPS * v,
          output_target_word=2 * v,
      )
      return self.output_frac * sum(per_token.values()) * s
    per_token.update(
        tok_type_and_position=2 * e * (s + 2),
        add_tok_type_and_position=2 * e,
        emb_layer_norm=LAYER_NORM_FLOPS * e,
        emb_dropout=DROPOUT_FLOPS * e,
    )
    if e != h:
      per_token.update(hidden_kernel=2 * h * e, hidden_bias=h)
    return sum(per_token.values()) * s

  def get_binary_classification_flops(self) -> float:
    h = self.h
    return (2 * h * h + h + ACTIVATION_FLOPS * h + 2 * h) * self.s

  def get_train_flops(self, batch_size: int, train_steps: float,
                      discriminator: bool = False) -> float:
    head = (self.get_binary_classification_flops() if discriminator
            else self.get_embedding_flops(output=True))
    forward = self.l * self.get_block_flops() + self.get_embedding_flops() + head
    return 2 * batch_size * train_steps * forward

  def get_infer_flops(self) -> float:
    return (self.l * self.get_block_flops() + self.get_embedding_flops()
            + self.get_binary_classification_flops())


def get_electra_train_flops(h_d: int, l_d: int, h_g: int, l_g: int, batch_size: int,
                            train_steps: float, tied_embeddings: bool,
                            e: Optional[int] = None, s: int = 512,
                            output_frac: float = 0.15625, v: int = 30522) -> float:
  """Discriminator (with its binary head) plus generator (with its MLM head)."""
  e = h_d if e is None else e
  disc = TransformerHparams(h_d, l_d, s=s, v=v, e=e, output_frac=output_frac)
  gen = TransformerHparams(h_g, l_g, s=s, v=v, e=e if tied_embeddings else None,
                           output_frac=output_frac)
  return (disc.get_train_flops(batch_size, train_steps, discriminator=True)
          + gen.get_train_flops(batch_size, train_steps))


def electra_pretraining_flops_per_example(disc_hidden: int, disc_layers: int,
                                          gen_hidden: int, gen_layers: int,
                                          embedding_size: int, seq_len: int,
                                          mask_prob: float = 0.15,
                                          vocab_size: int = 30522,
                                          tied_embeddings: bool = True) -> float:
  """Training FLOPs of one pre-training example by the original's formula.

  `output_frac` is the masked fraction the original uses for its table
  (0.15625 = 20/128 ≈ mask_prob + rounding); we pass max_predictions/seq_len.
  """
  max_predictions = int((mask_prob + 0.005) * seq_len)
  return get_electra_train_flops(disc_hidden, disc_layers, gen_hidden, gen_layers, 1, 1,
                                 tied_embeddings, e=embedding_size, s=seq_len,
                                 output_frac=max_predictions / seq_len, v=vocab_size)


def paper_table() -> Dict[str, float]:
  """The models and settings of the original script's table, in its order."""
  t5_encoder = TransformerHparams(1024, 24, v=32000, i=65536, heads=128, head_size=128,
                                  output_frac=0.0)
  t5_decoder = TransformerHparams(1024, 24, v=32000, i=65536, heads=128, head_size=128,
                                  output_frac=1.0, decoder=True)
  return {
      "elmo": 2 * 10 * 768648884 * 568093262680 / (20 * 128),
      "xlnet": 2 * 500000 * 8192 * 15064773691518 / 32,
      "gpt": TransformerHparams(768, 12, v=40000, output_frac=1.0).get_train_flops(128, 960800),
      "bert_small": TransformerHparams(256, 12, e=128, s=128).get_train_flops(128, 1.45e6),
      "bert_base": TransformerHparams(768, 12).get_train_flops(256, 1e6),
      "bert_large": TransformerHparams(1024, 24).get_train_flops(256, 1e6),
      "electra_small": get_electra_train_flops(256, 12, 64, 12, 128, 1e6, True, s=128, e=128),
      "electra_base": get_electra_train_flops(768, 12, 256, 12, 256, 766000, True),
      "electra_400k": get_electra_train_flops(1024, 24, 256, 24, 2048, 400000, True),
      "electra_1.75M": get_electra_train_flops(1024, 24, 256, 24, 2048, 1750000, True),
      "roberta": TransformerHparams(1024, 24, v=50265).get_train_flops(8000, 500000),
      "albert": TransformerHparams(4096, 12, v=30000, e=128).get_train_flops(4096, 1.5e6),
      "t5_11b": t5_encoder.get_train_flops(2048, 1e6) + t5_decoder.get_train_flops(2048, 1e6),
  }
