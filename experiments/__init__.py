"""Experiments: studies (lists of run configs), the quickstart and the benchmarks."""
