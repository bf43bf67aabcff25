"""Debugging tools: where a quantized file loses accuracy (precision)."""
