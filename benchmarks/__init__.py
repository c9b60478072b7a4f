"""Speed benchmarks (forward time, train step) and the PyTorch versions they compare with."""
