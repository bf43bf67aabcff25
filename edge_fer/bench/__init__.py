"""Benchmarking: MLPerf-style timing, the device-side runner, SSH targets, trtexec logs and the results store."""
