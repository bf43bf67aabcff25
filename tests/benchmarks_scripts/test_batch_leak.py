import importlib.util

import numpy as np

from tests.helpers import REPO

spec = importlib.util.spec_from_file_location("batch_leak_audit", REPO / "benchmarks" / "batch_leak_audit.py")
audit = importlib.util.module_from_spec(spec)
spec.loader.exec_module(audit)


def test_batch_attention_is_an_identity_alone_and_mixes_in_a_batch():
    x = np.random.default_rng(0).normal(size=(5, 32)) * 0.3
    np.testing.assert_allclose(audit.batch_attention(x[:1]), x[:1])
    mixed = audit.batch_attention(x)
    weights = audit.softmax(x @ x.T / np.sqrt(32))
    np.testing.assert_allclose(mixed, weights @ x)
    assert np.abs(mixed[0] - x[0]).max() > 1e-3


def test_scoring_order_changes_what_a_batch_sees():
    features = np.random.default_rng(1).normal(size=(40, 8))
    kernel, bias = np.random.default_rng(2).normal(size=(8, 3)), np.zeros(3)
    alone = audit.score_in_batches(features, kernel, bias, np.arange(40), 1)
    np.testing.assert_array_equal(alone, (features @ kernel).argmax(1))
    batched = audit.score_in_batches(features, kernel, bias, np.arange(40), 8)
    assert batched.shape == (40,)
