"""Training: distribution strategy, precision, the DualOpt schedule and the custom loop."""
