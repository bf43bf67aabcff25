"""edge_fer: facial-expression recognition from a dataset on disk to benchmarked edge artifacts."""

import os

# tensorflow-model-optimization needs the Keras 2 API (tf_keras). This must be set before
# TensorFlow is imported anywhere, so it lives at the very top of the package.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
