"""Tap pruning: a convolution's zeros in whole kernel taps (one filter's weights at one kernel position, across all
of its input channels), chosen by the taps' mean magnitude.

TFLite stores a Conv2D kernel as [out, h, w, in]: a tap is a run of ``in`` consecutive bytes. Unstructured zeros
scatter over the kernel, and deflate pays a match or a literal for every short run between two nonzeros; zeros
in whole taps are long runs. On the digits student's 85 %-sparse 8→16 convolution, the same 173 nonzero int8
values moved into whole taps (placed by hand, no training) gzip ~100 B smaller: 1,480 → 1,383 B for the whole file.
Whole taps cost more accuracy than the same share of single weights, so whether it pays depends on the model (on
the digits student it did not: README). The model stays a dense graph (no sparse kernels).

``TapPruning`` is tfmot's ``Pruning`` with its block-mask step (tfmot's own blocks take rank-2 weights only)
computing the mask on the taps for a rank-3/4 kernel; ``prune_taps`` wraps a layer with it. ``tap_mask`` is the
same choice in numpy, for the sensitivity scan's one-shot pruning.
"""

from __future__ import annotations

import functools

import numpy as np


def tap_layer(layer) -> bool:
    """A Conv1D/Conv2D (not depthwise, separable or transposed) whose taps hold more than one weight."""
    import tf_keras as keras

    conv = type(layer) in (keras.layers.Conv1D, keras.layers.Conv2D)
    return conv and int(layer.kernel.shape[-2]) > 1


def tap_mask(kernel: np.ndarray, share: float) -> np.ndarray:
    """0/1 mask of ``kernel``'s shape ([..., in, out]) zeroing the ``share`` of taps of least mean |weight|."""
    taps = np.abs(kernel).mean(axis=-2)
    n = int(round(share * taps.size))
    keep = np.ones(taps.size, dtype=kernel.dtype)
    if n:
        keep[np.argpartition(taps.ravel(), n - 1)[:n]] = 0
    return np.broadcast_to(np.expand_dims(keep.reshape(taps.shape), -2), kernel.shape)


@functools.cache
def _wrapper_class():
    """tfmot's PruneLowMagnitude whose Pruning picks its masks per tap (defined once, on first use: tfmot is
    imported only then)."""
    import tensorflow as tf
    from tensorflow_model_optimization.python.core.sparsity.keras import pruning_impl, pruning_wrapper

    class TapPruning(pruning_impl.Pruning):
        """tfmot's magnitude pruning with the mask chosen per tap (mean |weight| over the input channels)."""

        def _maybe_update_block_mask(self, weights):
            if weights.shape.ndims < 3:
                return super()._maybe_update_block_mask(weights)
            pooled = tf.math.reduce_mean(tf.math.abs(weights), axis=-2)
            threshold, mask = self._update_mask(pooled)
            return threshold, tf.broadcast_to(tf.expand_dims(mask, -2), tf.shape(weights))

    class PruneTaps(pruning_wrapper.PruneLowMagnitude):
        def build(self, input_shape):
            super().build(input_shape)
            old = self.pruning_obj
            self.pruning_obj = TapPruning(training_step_fn=old._step_fn, pruning_vars=self.pruning_vars,
                                          pruning_schedule=self.pruning_schedule, block_size=self.block_size,
                                          block_pooling_type=self.block_pooling_type)

    return PruneTaps


def prune_taps(layer, pruning_schedule):
    """``layer`` wrapped by tfmot's PruneLowMagnitude, its masks chosen per tap."""
    return _wrapper_class()(layer, pruning_schedule=pruning_schedule)
