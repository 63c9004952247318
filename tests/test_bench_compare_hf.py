"""bench/compare_hf.py: nominal peak from lscpu and argument checks (no torch needed)."""
import subprocess

import pytest

from bench import compare_hf

LSCPU = """Architecture:            x86_64
CPU(s):                  4
Model name:              Intel(R) Xeon(R) Gold 6430 CPU @ 2.10GHz
Flags:                   fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile
"""


def _fake_lscpu(monkeypatch, text):
  monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(
      a[0], 0, stdout=text, stderr=""))


def test_nominal_peak_from_model_name_clock(monkeypatch):
  _fake_lscpu(monkeypatch, LSCPU)
  peaks = compare_hf.nominal_peak_flops()
  assert peaks["clock_ghz"] == 2.1
  assert peaks["fp32"] == pytest.approx(4 * 2.1e9 * 64)  # AVX-512: 2 FMA × 16 lanes × 2
  assert peaks["bf16"] == pytest.approx(4 * 2.1e9 * 1024)  # AMX-BF16


def test_nominal_peak_prefers_max_mhz_and_needs_a_clock(monkeypatch):
  _fake_lscpu(monkeypatch, LSCPU.replace("avx512f avx512_bf16 amx_bf16 amx_tile", "")
              + "CPU max MHz:             3000.0000\n")
  peaks = compare_hf.nominal_peak_flops()
  assert peaks["fp32"] == pytest.approx(4 * 3.0e9 * 32) and peaks["bf16"] == peaks["fp32"]
  _fake_lscpu(monkeypatch, "CPU(s): 2\nModel name: Intel(R) Xeon(R) Processor\nBogoMIPS: 4200\n")
  assert compare_hf.nominal_peak_flops("/nonexistent")["fp32"] is None  # BogoMIPS is no clock


def test_nominal_peak_falls_back_to_cpuinfo_clock(monkeypatch, tmp_path):
  """Virtual machines: no max MHz, no clock in the model name; /proc/cpuinfo has one."""
  _fake_lscpu(monkeypatch, "CPU(s): 2\nModel name: Intel(R) Xeon(R) Processor\n"
              "Flags: fpu avx2 avx512f\nBogoMIPS: 5199.99\n")
  cpuinfo = tmp_path / "cpuinfo"
  cpuinfo.write_text("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor\n"
                     "cpu MHz\t\t: 2599.998\nbogomips\t: 5199.99\n")
  peaks = compare_hf.nominal_peak_flops(str(cpuinfo))
  assert peaks["clock_ghz"] == pytest.approx(2.599998)
  assert peaks["fp32"] == pytest.approx(2 * 2.599998e9 * 64) and peaks["bf16"] == peaks["fp32"]


@pytest.mark.parametrize("config", ["pretrain:fp16", "bogus:fp32", "pretrain"])
def test_bad_config_is_a_usage_error(config):
  with pytest.raises(SystemExit) as err:
    compare_hf.main(["--configs", config])
  assert err.value.code == 2
