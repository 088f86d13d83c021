"""Knowledge distillation (Hinton et al. 2015) for tf_keras classifiers, and reading logits off a model.

loss = α·CE(y, student) + (1 − α)·T²·KL(softmax(teacher/T) ‖ softmax(student/T)). The teacher is frozen: its
logits are computed once per data set (``teacher_logits``, inference mode, no augmentation here, so this is
the same as calling it every step and much cheaper when many trials share one teacher) and fed to
``Distiller`` next to the labels; a fine-tune that augments its batches runs the teacher on each augmented
batch instead (``make_distiller(..., teacher=, augment=)``). With no teacher logits the Distiller trains on the labels alone, so every
training stage has one train_step. ``logits_of`` splits a classifier into (model with a separate softmax
layer, model up to that softmax): distillation needs pre-softmax scores for both networks.
"""

from __future__ import annotations

import functools
import logging

import numpy as np

from edgeopt.errors import UsageError

log = logging.getLogger(__name__)


def logits_of(model, role: str = "model"):
    """(classifier, logits model) sharing layers with ``model`` where possible.

    A final softmax Activation/Softmax layer (the zoo's ``softmax``) is cut off; a final layer with
    ``activation='softmax'`` (e.g. Dense) is rebuilt linear, followed by a separate float32 softmax layer, with
    the same weights; a linear last layer already gives logits. Any other output is not a class distribution.
    """
    import tf_keras as keras

    if not isinstance(model, keras.Model) or len(model.outputs) != 1:
        what = type(model).__name__ if not isinstance(model, keras.Model) else f"{len(model.outputs)} outputs"
        raise UsageError(f"the {role} must be a single-output tf_keras classifier (got {what})",
                         "pass a functional or Sequential model with one softmax or logits output")
    if len(model.output_shape) != 2:
        raise UsageError(f"the {role}'s output has shape {model.output_shape[1:]}, not a class distribution",
                         "distillation needs a classifier whose output is (batch, classes)")
    last = model.layers[-1]
    act = _activation_name(last)
    if act == "softmax" and _is_activation_layer(last):
        return model, keras.Model(model.inputs, last.input, name=f"{model.name}_logits")
    if act == "softmax":
        cfg = {**last.get_config(), "activation": "linear", "name": f"{last.name}_logits"}
        linear = last.__class__.from_config(cfg)
        z = linear(last.input)
        linear.set_weights(last.get_weights())
        probs = keras.layers.Activation("softmax", dtype="float32", name="softmax")(z)
        return (keras.Model(model.inputs, probs, name=model.name),
                keras.Model(model.inputs, z, name=f"{model.name}_logits"))
    if act in (None, "linear"):
        return model, model
    raise UsageError(f"the {role} ends in a '{act}' activation, so its output is not a class distribution",
                     "distill from a classifier that ends in softmax (or outputs logits)")


def is_probabilities(outputs) -> bool:
    """True when every row of ``outputs`` is a class distribution (non-negative, sums to 1): the model ends in a
    softmax, so a loss or a score must not apply one again. The one place that decides it from outputs."""
    out = np.asarray(outputs, dtype=np.float64)
    return bool(np.all(out >= -1e-6) and np.allclose(out.sum(axis=-1), 1.0, atol=1e-3))


def num_classes(model) -> int:
    return int(model.output_shape[-1])


def teacher_logits(teacher, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The frozen teacher's pre-softmax scores for ``x`` (float32)."""
    _, logits = logits_of(teacher, "teacher")
    return np.asarray(logits.predict(x, batch_size=batch_size, verbose=0), dtype=np.float32)


def _activation_name(layer) -> str | None:
    import tf_keras as keras

    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    fn = getattr(layer, "activation", None)
    if fn is None:
        return None
    return keras.activations.serialize(fn) if callable(fn) else str(fn)


def _is_activation_layer(layer) -> bool:
    import tf_keras as keras

    return isinstance(layer, keras.layers.Activation | keras.layers.Softmax)


def make_distiller(student_logits, temperature: float = 4.0, alpha: float = 0.1, *, probabilities: bool = False,
                   teacher=None, augment=None):
    """A Distiller around ``student_logits`` (the logits model of the student; its weights are trained).

    ``probabilities``: the student outputs a softmax (a tfmot-wrapped classifier, whose softmax cannot be cut
    off); its log-probabilities stand in for logits — softmax(log p / T) = softmax(z / T), and the label term
    is then Keras's cross-entropy on probabilities (clipped at 1e-7 the same way). ``augment``: a model applied
    to every training batch (``training=True``); ``teacher``: a logits model run on each (augmented) batch, for
    when precomputed teacher logits would not match the augmented inputs. Neither is tracked as a sub-model:
    their weights are not the Distiller's."""
    distiller = _distiller_class()(student_logits, temperature=temperature, alpha=alpha)
    distiller.probabilities = bool(probabilities)
    # plain closures, not attributes Keras would track (get_weights / set_weights must see the student only)
    distiller.augment_fn = None if augment is None else (lambda x: augment(x, training=True))
    distiller.teacher_fn = None if teacher is None else (lambda x: teacher(x, training=False))
    return distiller


@functools.cache
def _distiller_class():
    import tensorflow as tf
    import tf_keras as keras

    class Distiller(keras.Model):
        """Trains ``student`` (logits) on (x, y) or (x, (y, teacher_logits)); evaluates on (x, y)."""

        def __init__(self, student, temperature: float, alpha: float):
            super().__init__(name="distiller")
            self.student, self.temperature, self.alpha = student, float(temperature), float(alpha)
            self.probabilities, self.augment_fn, self.teacher_fn = False, None, None
            self.loss_tracker = keras.metrics.Mean(name="loss")
            self.ce_tracker = keras.metrics.Mean(name="student_loss")
            self.kd_tracker = keras.metrics.Mean(name="distillation_loss")
            self.acc = keras.metrics.SparseCategoricalAccuracy(name="accuracy")

        @property
        def metrics(self):
            return [self.loss_tracker, self.ce_tracker, self.kd_tracker, self.acc]

        def call(self, x, training=False):
            return self.student(x, training=training)

        def _scores(self, x, training: bool):
            out = tf.cast(self.student(x, training=training), tf.float32)
            return tf.math.log(tf.clip_by_value(out, 1e-7, 1.0)) if self.probabilities else out

        def _loss_terms(self, y, s, t):
            ce = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, s, from_logits=True))
            if t is None:
                return ce, ce, tf.zeros_like(ce)
            temp = self.temperature
            p_t = tf.nn.softmax(t / temp)
            log_p_s = tf.nn.log_softmax(s / temp)
            log_p_t = tf.nn.log_softmax(t / temp)
            kl = tf.reduce_mean(tf.reduce_sum(p_t * (log_p_t - log_p_s), axis=-1))
            kd = temp * temp * kl
            return self.alpha * ce + (1.0 - self.alpha) * kd, ce, kd

        def train_step(self, data):
            x, target = data[0], data[1]
            y, t = (target[0], target[1]) if isinstance(target, tuple | list) else (target, None)
            if self.augment_fn is not None:
                x = self.augment_fn(x)
            if self.teacher_fn is not None:
                t = self.teacher_fn(x)
            if t is not None:
                t = tf.cast(t, tf.float32)
            with tf.GradientTape() as tape:
                s = self._scores(x, training=True)
                loss, ce, kd = self._loss_terms(y, s, t)
                total = loss + tf.add_n(self.student.losses) if self.student.losses else loss
                scaled = self.optimizer.get_scaled_loss(total) if hasattr(self.optimizer, "get_scaled_loss") else total
            weights = self.student.trainable_variables
            grads = tape.gradient(scaled, weights)
            if hasattr(self.optimizer, "get_unscaled_gradients"):
                grads = self.optimizer.get_unscaled_gradients(grads)
            self.optimizer.apply_gradients(zip(grads, weights, strict=True))
            return self._update(loss, ce, kd, y, s)

        def test_step(self, data):
            x, target = data[0], data[1]
            y = target[0] if isinstance(target, tuple | list) else target
            s = self._scores(x, training=False)
            ce = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, s, from_logits=True))
            # validation reports the student's own cross-entropy as `loss`: comparable with or without a teacher
            return self._update(ce, ce, tf.zeros_like(ce), y, s)

        def _update(self, loss, ce, kd, y, s):
            self.loss_tracker.update_state(loss)
            self.ce_tracker.update_state(ce)
            self.kd_tracker.update_state(kd)
            self.acc.update_state(y, s)
            return {m.name: m.result() for m in self.metrics}

    return Distiller
