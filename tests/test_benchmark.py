"""experiments.benchmark is a tool, not a test; this keeps it runnable (no timing asserted)."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _benchmark(*flags: str) -> str:
  """Runs `python -m experiments.benchmark` with `flags`; returns its stdout."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  proc = subprocess.run([sys.executable, "-m", "experiments.benchmark", *flags], cwd=ROOT,
                        capture_output=True, text=True, timeout=600, env=env)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc.stdout


@pytest.mark.heavy
def test_train_benchmark_runs_every_engine_setting_and_names_the_fastest():
  stdout = _benchmark("--what=train", "--backbone=mobilenet_v3_small", "--image_size=32",
                      "--batch_size=16", "--steps=2", "--repeats=1", "--notorch",
                      "--cpu_replicas=2", "--json")
  lines = stdout.strip().splitlines()
  assert "loop, 2 CPU replicas" in stdout and "keras Model.fit" in stdout
  last = dict(item.split("=", 1) for item in lines[-1].split())
  assert set(last) == {"ratio", "vs_torch", "loop", "default_ratio", "default_vs_torch"}
  assert float(last["ratio"]) >= float(last["default_ratio"]) > 0   # the fastest is named
  assert last["loop"] in ("default", "--cpu_replicas=2") and last["vs_torch"] == "n/a"


def test_depthwise_benchmark_lists_every_layer_and_the_engine_choice():
  stdout = _benchmark("--what=depthwise", "--backbone=mobilenet_v3_small", "--image_size=32",
                      "--batch_size=2", "--repeats=1", "--json")
  rows = json.loads(stdout.strip().splitlines()[-1])["depthwise"]
  assert len(rows) == 11                                           # every depthwise layer
  assert all(r["engine_uses"] == ("ours" if r["kernel"] == [5, 5] else "tf") for r in rows)
  assert [r["engine_uses"] for r in rows].count("ours") == 8        # the 5x5 ones
  assert all(r["tf_ms"] > 0 and r["ours_ms"] > 0 and r["forward_ms"] > 0 for r in rows)
  assert "per step: TensorFlow" in stdout


def test_profile_lists_op_types_with_our_kernels_in_them():
  stdout = _benchmark("--what=profile", "--backbone=mobilenet_v3_small", "--image_size=32",
                      "--batch_size=4", "--steps=2", "--json")
  report = json.loads(stdout.strip().splitlines()[-1])["profile"]
  kinds = {op["type"] for op in report["ops"]}
  assert {"TfbHardSwish", "TfbHardSwishGrad", "TfbDepthwiseConv2dBackpropFilter"} <= kinds
  assert report["total_ms_per_step"] == pytest.approx(
      sum(op["ms_per_step"] for op in report["ops"]))


@pytest.mark.heavy
def test_inference_benchmark_times_litert_fp32_and_int8_and_ends_with_the_speedup():
  pytest.importorskip("ai_edge_litert")
  stdout = _benchmark("--what=inference", "--backbones=mobilenet_v3_small",
                      "--inference_size=32")
  assert "fp32 1t" in stdout and "int8 1t" in stdout and "not in XNNPACK" in stdout
  row = next(line for line in stdout.splitlines()
             if line.strip().startswith("mobilenet_v3_small") and "x" in line)
  assert "HARD_SWISH" not in row  # the INT8 export's hard-swish runs in XNNPACK (rewrite.py)
  last = dict(item.split("=", 1) for item in stdout.strip().splitlines()[-1].split())
  assert set(last) == {"int8_speedup", "one_thread", "vs_keras", "mobilenet_v3_small"}
  assert float(last["int8_speedup"]) == float(last["mobilenet_v3_small"]) > 0
