"""Reference servers the benchmark compares MLBuffet with, each run as its own process."""
