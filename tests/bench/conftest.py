"""Fixtures of the SSH tests live in tests/conftest.py (loopback_ssh, loopback_target)."""
