"""Procedurally generated face-like images: the built-in default that needs nothing downloaded.

Each image is a face outline whose mouth curvature and opening, brow angle and height, and eye openness
depend on the expression, plus pose jitter (shift, scale, rotation), lighting, noise and random
occluding patches. Deterministic from the seed. It is SYNTHETIC data, and says so wherever it is shown.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from edge_fer.data.base import Adapter, Split, register_dataset, typed_option
from edge_fer.errors import DataError

CLASSES = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear")


@dataclass(frozen=True)
class Expression:
    mouth_curve: float  # + smile, - frown
    mouth_open: float  # 0 closed .. 1 wide open
    mouth_width: float  # fraction of face width
    brow_tilt: float  # + inner ends down (anger), - inner ends up (sadness, fear)
    brow_raise: float  # + raised
    eye_open: float  # 0 shut .. 1 wide
    asymmetry: float = 0.0  # one mouth corner up (disgust, contempt)


EXPRESSIONS = {
    "neutral": Expression(0.0, 0.0, 0.50, 0.0, 0.0, 0.50),
    "happiness": Expression(0.9, 0.15, 0.65, 0.0, 0.05, 0.40),
    "surprise": Expression(0.0, 0.90, 0.35, 0.0, 0.50, 0.95),
    "sadness": Expression(-0.8, 0.0, 0.50, -0.6, 0.15, 0.35),
    "anger": Expression(-0.3, 0.10, 0.45, 0.8, -0.20, 0.55),
    "disgust": Expression(-0.4, 0.05, 0.45, 0.4, -0.10, 0.20, asymmetry=0.6),
    "fear": Expression(-0.2, 0.50, 0.55, -0.5, 0.45, 0.95),
}
DEFAULT_COUNTS = {"train": 2100, "valid": 350, "test": 350}
MAX_COUNT = 1_000_000  # images per split; bounds the memory generated before any allocation
SUPERSAMPLE = 4


def render_face(expression: Expression, size: int, rng: np.random.Generator, occlusion: float, noise: float) -> np.ndarray:
    """One uint8 (size, size) grey face. Drawn at SUPERSAMPLE× and reduced, for smooth edges."""
    jitter = lambda value, spread=0.12: value + rng.normal(0.0, spread)  # noqa: E731
    canvas = SUPERSAMPLE * size
    background = int(rng.integers(20, 120))
    image = Image.new("L", (canvas, canvas), background)
    draw = ImageDraw.Draw(image)
    scale = rng.uniform(0.9, 1.1)
    s = canvas / 100.0 * scale  # drawing units: the face lives in a 100×100 box, scaled about the centre
    origin = canvas * (1 - scale) / 2
    at = lambda x, y: (origin + x * s, origin + y * s)  # noqa: E731
    skin = int(rng.integers(150, 230))
    ink = int(rng.integers(0, 60))
    draw.ellipse([*at(18, 8), *at(82, 96)], fill=skin)

    eye_height = max(0.6, 7.0 * min(max(jitter(expression.eye_open), 0.05), 1.2))
    for center_x in (36, 64):
        draw.ellipse([*at(center_x - 7, 42 - eye_height / 2), *at(center_x + 7, 42 + eye_height / 2)], fill=ink)

    raise_ = 8.0 * jitter(expression.brow_raise)
    tilt = 7.0 * jitter(expression.brow_tilt)
    for outer_x, inner_x in ((24, 44), (76, 56)):
        outer_y = 31 - raise_
        inner_y = outer_y + tilt
        draw.line([at(outer_x, outer_y), at(inner_x, inner_y)], fill=ink, width=max(1, int(3 * s)))

    half_width = 32.0 * min(max(jitter(expression.mouth_width, 0.06), 0.2), 0.8)
    curve = 10.0 * jitter(expression.mouth_curve)
    lift = 6.0 * jitter(expression.asymmetry, 0.08)
    opening = 14.0 * min(max(jitter(expression.mouth_open), 0.0), 1.2)
    xs = np.linspace(-1.0, 1.0, 24)
    upper = 74 - curve * xs**2 + curve / 2 - lift * (xs + 1) / 2
    lower = upper + opening * (1 - xs**2)
    points_upper = [at(50 + half_width * x, y) for x, y in zip(xs, upper)]
    points_lower = [at(50 + half_width * x, y) for x, y in zip(xs[::-1], lower[::-1])]
    if opening > 1.5:
        draw.polygon(points_upper + points_lower, fill=ink)
    else:
        draw.line(points_upper, fill=ink, width=max(1, int(3 * s)), joint="curve")

    if rng.random() < occlusion:
        width, height = rng.uniform(0.15, 0.4, size=2) * canvas
        left, top = rng.uniform(0, canvas - width), rng.uniform(0, canvas - height)
        draw.rectangle([left, top, left + width, top + height], fill=int(rng.integers(0, 256)))

    angle = rng.normal(0.0, 8.0)
    shift = rng.normal(0.0, 0.05 * canvas, size=2)
    image = image.rotate(angle, resample=Image.BILINEAR, translate=tuple(shift), fillcolor=background)
    image = image.resize((size, size), Image.BILINEAR)

    light = np.linspace(rng.uniform(-25, 25), rng.uniform(-25, 25), size)[None, :]
    pixels = np.asarray(image, np.float32) * rng.uniform(0.75, 1.15) + light + rng.normal(0.0, noise, (size, size))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def generate(count: int, size: int, seed: int, occlusion: float = 0.25, noise: float = 6.0) -> tuple[np.ndarray, np.ndarray]:
    """`count` balanced, shuffled images (count, size, size, 1) and labels, deterministic from `seed`."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(count) % len(CLASSES)).astype(np.int64)
    images = np.stack([render_face(EXPRESSIONS[CLASSES[c]], size, rng, occlusion, noise) for c in labels])
    return images[..., None], labels


@register_dataset
class Synthetic(Adapter):
    name = "synthetic"
    classes = CLASSES
    synthetic = True
    needs_root = False
    cacheable = False  # generating is as fast as reading a cache

    def check_options(self, options: dict) -> dict:
        allowed = {f"{split}_count" for split in DEFAULT_COUNTS} | {"seed", "occlusion", "noise"}
        unknown = set(options) - allowed
        if unknown:
            raise DataError(f"synthetic takes the options {', '.join(sorted(allowed))}; got {', '.join(sorted(unknown))}")
        checked = {
            "seed": typed_option(self.name, options, "seed", 0, int, 0, 2**31 - 1),
            "occlusion": typed_option(self.name, options, "occlusion", 0.25, float, 0.0, 1.0),
            "noise": typed_option(self.name, options, "noise", 6.0, float, 0.0, 255.0),
        }
        for split, default in DEFAULT_COUNTS.items():
            checked[f"{split}_count"] = typed_option(self.name, options, f"{split}_count", default, int, 1, MAX_COUNT)
        return checked

    def read(self) -> dict[str, Split]:
        size = self.image_size or 48
        splits = {}
        for index, split in enumerate(DEFAULT_COUNTS):
            count = self.options[f"{split}_count"]
            seed = self.options["seed"] * 1000 + index
            images, labels = generate(count, size, seed, self.options["occlusion"], self.options["noise"])
            splits[split] = Split(images, labels, np.asarray([f"synthetic-{split}-{i:06d}" for i in range(count)]))
        return splits
