"""What a traced graph runs through XLA: the calls of `jit_compile` functions in it."""
import re
from typing import List

import tensorflow as tf


def xla_calls(graph: tf.Graph) -> List[tf.Operation]:
  """The function calls in `graph` that must be XLA-compiled."""
  return [op for op in graph.get_operations() if "Call" in op.type
          and "_XlaMustCompile" in op.node_def.attr and op.node_def.attr["_XlaMustCompile"].b]


def xla_kernel_names(graph: tf.Graph) -> List[str]:
  """Sorted names of the XLA-compiled functions `graph` calls, e.g. "masked_softmax" for
  `modeling._masked_softmax_fused` (traced as "__inference__masked_softmax_123")."""
  return sorted(re.sub(r"^_+inference_+|_fused|_\d+$", "", op.node_def.attr["f"].func.name)
                for op in xla_calls(graph))
