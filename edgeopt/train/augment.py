"""Light augmentation for image data during the compression fine-tunes: random shift, crop (zoom in) and,
when asked, horizontal flip — applied per sample inside the training step, never at evaluation.

Only image inputs are augmented: a batch of rank 4 (N, H, W, C) with 1 or 3 channels (``is_image``); every
other input (tabular rows, sequences, token ids, multi-channel sensor stacks) trains as it is. ``flip`` is off
by default: a mirrored 2, 3 or 7 is not the same digit, and a data set cannot tell us which of its classes are
mirror-symmetric. ``rotate`` (random quarter turns, square images only) is off by default for the same reason; it
suits classes that do not change when turned (shapes, textures, aerial or microscope images).

``AugmentConfig`` imports no TensorFlow (recipes are parsed without it); ``make(cfg, input_shape, seed)``
builds the augmenting callable, or returns None when there is nothing to do.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger(__name__)


class AugmentConfig(BaseModel):
    """``shift``: largest translation as a fraction of height/width; ``crop``: largest zoom-in (a random crop
    resized back) as a fraction; ``flip``: random left-right mirror; ``rotate``: random turn by 0, 90, 180 or 270
    degrees (square images). 0 / false turns one off."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    shift: float = Field(0.1, ge=0.0, le=0.5)
    crop: float = Field(0.1, ge=0.0, lt=1.0)
    flip: bool = False
    rotate: bool = False

    @property
    def active(self) -> bool:
        return self.shift > 0 or self.crop > 0 or self.flip or self.rotate


def is_image(input_shape: tuple[int, ...] | Any) -> bool:
    """(H, W, C) with C 1 (grey) or 3 (RGB), both spatial sides known and > 1."""
    shape = tuple(input_shape)
    if len(shape) != 3 or shape[-1] not in (1, 3):
        return False
    return all(isinstance(d, int) and d > 1 for d in shape[:2])


def describe(cfg: AugmentConfig | None, input_shape) -> dict:
    """What the fine-tune does, for the manifest: the settings, or why it augments nothing."""
    if cfg is None or not cfg.active:
        return {"applied": False, "why": "off in the recipe"}
    if not is_image(input_shape):
        return {"applied": False, "why": f"input {tuple(input_shape)} is not an image (H, W, 1 or 3 channels)"}
    out = {"applied": True, **cfg.model_dump(), "shift_pixels": list(shift_pixels(cfg, input_shape))}
    if cfg.rotate and not square(input_shape):
        out.update(rotate=False, rotate_why=f"input {tuple(input_shape)[:2]} is not square: quarter turns skipped")
    return out


def square(input_shape) -> bool:
    return int(input_shape[0]) == int(input_shape[1])


def shift_pixels(cfg: AugmentConfig, input_shape) -> tuple[int, int]:
    """Largest shift in whole pixels (rows, columns), never more than ``shift`` of a side: sub-pixel shifts
    interpolate, which on small images blurs more than it moves, and one pixel is already 12 % of an 8×8 digit
    (the bundled digits model's own top-1 on such inputs: 0.70 for 0.8 px bilinear, 0.77 for ±1 px)."""
    h, w = int(input_shape[0]), int(input_shape[1])
    return int(cfg.shift * h), int(cfg.shift * w)


def make(cfg: AugmentConfig | None, input_shape, seed: int = 0):
    """A callable that augments a batch (``augment(x, training=True)``); None when off or not an image input.

    Shifts move every sample by its own whole number of pixels (edges mirrored in); the crop is tf_keras's
    RandomZoom (zoom in by up to ``crop``); the flip is RandomFlip. Random ops are seeded from ``seed`` (and
    the global seed the training loop sets), so a rerun augments the same way."""
    if not describe(cfg, input_shape)["applied"]:
        return None
    import tensorflow as tf
    import tf_keras as keras

    py, px = shift_pixels(cfg, input_shape)
    layers = []
    if cfg.crop > 0:
        layers.append(keras.layers.RandomZoom((-cfg.crop, 0.0), (-cfg.crop, 0.0), fill_mode="nearest",
                                              seed=seed + 1))
    if cfg.flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed + 2))
    spatial = keras.Sequential(layers, name="augment") if layers else None
    if spatial is not None:
        spatial.build((None, *tuple(input_shape)))

    def shift(x):
        n, h, w = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
        padded = tf.pad(x, [[0, 0], [py, py], [px, px], [0, 0]], mode="SYMMETRIC")
        dy = tf.random.uniform([n], 0, 2 * py + 1, dtype=tf.int32, seed=seed + 3)
        dx = tf.random.uniform([n], 0, 2 * px + 1, dtype=tf.int32, seed=seed + 4)
        rows = dy[:, None] + tf.range(h)[None, :]
        padded = tf.gather(padded, rows, axis=1, batch_dims=1)
        cols = dx[:, None] + tf.range(w)[None, :]
        return tf.gather(padded, cols, axis=2, batch_dims=1)

    def turn(x):
        # each sample its own number of quarter turns: all four computed, one picked per sample
        k = tf.random.uniform([tf.shape(x)[0]], 0, 4, dtype=tf.int32, seed=seed + 5)
        turns = tf.stack([tf.image.rot90(x, i) for i in range(4)], axis=1)
        return tf.gather(turns, k, axis=1, batch_dims=1)

    rotate = cfg.rotate and square(input_shape)

    def augment(x, training: bool = True):
        if not training:
            return x
        if py or px:
            x = shift(x)
        if rotate:
            x = turn(x)
        return spatial(x, training=True) if spatial is not None else x

    return augment
