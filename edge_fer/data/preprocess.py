"""The one resize every path uses (training, evaluation, export calibration, predict), without TensorFlow.

Artifacts take raw RGB pixels 0-255 at the model's input size; MobileNet scaling lives inside the model.
"""

from __future__ import annotations

import cv2
import numpy as np

# What every artifact's metadata says about its input, so an application feeds it what it was trained on.
PREPROCESSING = {
    "input": "RGB, float32 pixel values 0-255, shape (batch, size, size, 3)",
    "grey": "repeated to three channels",
    "resize": "bilinear, half-pixel centres (cv2.INTER_LINEAR), from the dataset image to size x size",
    "normalization": "inside the model: x / 127.5 - 1 (MobileNet)",
}


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 (N, H, W, C) -> uint8 (N, size, size, C), bilinear with half-pixel centres (as TF's resize)."""
    if images.shape[1:3] == (size, size):
        return images
    channels = images.shape[-1]
    resized = np.empty((len(images), size, size, channels), np.uint8)
    for index, image in enumerate(images):
        resized[index] = cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR).reshape(size, size, channels)
    return resized


def to_model_input(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 (N, H, W, 1|3) -> float32 (N, size, size, 3) raw pixels; grey repeated to three channels."""
    resized = resize_images(images, size)
    if resized.shape[-1] == 1:
        resized = np.repeat(resized, 3, axis=-1)
    return resized.astype(np.float32)
