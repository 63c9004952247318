"""model/flops.py and the flops_computation.py CLI against the paper's FLOPs and a hand count."""
import subprocess
import sys

import pytest

from model import flops as fc
from tests.conftest import REPO_ROOT

# Training FLOPs printed in the ELECTRA paper (Clark et al. 2020, Tables 1 and 8),
# two significant digits.
PAPER_FLOPS = {
    "gpt": 4.0e19,
    "bert_small": 1.4e18,
    "bert_base": 6.4e19,
    "bert_large": 1.9e20,
    "electra_base": 6.4e19,
    "electra_400k": 7.1e20,
    "electra_1.75M": 3.1e21,
    "roberta": 3.2e21,
    "xlnet": 3.9e21,
}


@pytest.mark.parametrize("name", sorted(PAPER_FLOPS))
def test_table_matches_paper(name):
  value = fc.paper_table()[name]
  assert float(f"{value:.1e}") == pytest.approx(PAPER_FLOPS[name], rel=1e-9), value


def test_block_flops_hand_count():
  # h=4, l=1, s=2, i=8, heads=1: per token = 6*4*4 + 3*4 + 2*4*2 + 5*2 + 4*2 + 2
  #   + 2*4*2 + 2*16 + 4 + 4*4 + 4 + 5 + 2*4*8 + 8*8 + 8 + 2*4*8 + 4 + 16 + 4 + 20
  per_token = (96 + 12 + 16 + 10 + 8 + 2 + 16 + 32 + 4 + 16 + 4 + 5
               + 64 + 64 + 8 + 64 + 4 + 16 + 4 + 20)
  hp = fc.TransformerHparams(4, 1, s=2, v=10, i=8)
  assert hp.get_block_flops() == per_token * 2


def test_embedding_and_head_hand_count():
  hp = fc.TransformerHparams(4, 1, s=2, v=10, e=3, output_frac=0.5)
  # input: 2ev + 2e(s+2) + 2e + 5e + 4e + 2he + h, per token, × s
  assert hp.get_embedding_flops() == (60 + 24 + 6 + 15 + 12 + 24 + 4) * 2
  # output: (2ev + 2he + e + 8e + 5e + 5v + 2v) × s × output_frac
  assert hp.get_embedding_flops(output=True) == pytest.approx((60 + 24 + 3 + 24 + 15 + 50 + 20) * 2 * 0.5)
  assert hp.get_binary_classification_flops() == (32 + 4 + 32 + 8) * 2


def test_electra_is_discriminator_plus_generator():
  total = fc.get_electra_train_flops(8, 2, 4, 2, 3, 5, True, e=6, s=4)
  disc = fc.TransformerHparams(8, 2, s=4, e=6).get_train_flops(3, 5, discriminator=True)
  gen = fc.TransformerHparams(4, 2, s=4, e=6).get_train_flops(3, 5)
  assert total == disc + gen


def test_script_prints_every_model():
  out = subprocess.run([sys.executable, "flops_computation.py"], cwd=REPO_ROOT,
                       capture_output=True, text=True, check=True).stdout.split("\n")
  names = [line.split()[0] for line in out if line]
  assert names == list(fc.paper_table())
  assert all(float(line.split()[1]) > 0 for line in out if line)
