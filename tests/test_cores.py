"""cores.usable(): the cores a process may use, under affinity and a cgroup v2 quota."""

import os

import pytest

from tfbackbones import cores


def _cpu_max(tmp_path, text):
  path = tmp_path / "cpu.max"
  path.write_text(text)
  return str(path)


@pytest.mark.parametrize("text,expected", [
    ("200000 100000\n", 2),
    ("150000 100000\n", 2),  # 1.5 cores still run 2 threads in parallel part of the time
    ("50000 100000\n", 1),
    ("max 100000\n", None),
    ("garbage\n", None),
    ("abc 100000\n", None),
])
def test_quota_reads_cgroup_v2_cpu_max(tmp_path, text, expected):
  assert cores._quota(_cpu_max(tmp_path, text)) == expected


def test_no_cgroup_file_means_no_quota(tmp_path):
  assert cores._quota(str(tmp_path / "missing")) is None


def test_affinity_limits_the_count_not_the_machine(monkeypatch, tmp_path):
  monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
  monkeypatch.setattr(os, "cpu_count", lambda: 64)
  assert cores.usable(str(tmp_path / "missing")) == 3


def test_a_quota_below_the_affinity_wins(monkeypatch, tmp_path):
  monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
  assert cores.usable(_cpu_max(tmp_path, "200000 100000")) == 2
  assert cores.usable(_cpu_max(tmp_path, "max 100000")) == 64


def test_without_affinity_it_falls_back_to_cpu_count(monkeypatch, tmp_path):
  monkeypatch.delattr(os, "sched_getaffinity", raising=False)
  monkeypatch.setattr(os, "cpu_count", lambda: None)
  assert cores.usable(str(tmp_path / "missing")) == 1
