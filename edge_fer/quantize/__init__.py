"""Quantization: tfmot QAT (with QuantizeConfigs for our custom layers) and PTQ calibration sets."""
