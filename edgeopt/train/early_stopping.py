"""Validation during a compression fine-tune, and early stopping on it.

After each epoch the classifier's batch-norm statistics are re-estimated (train/batchnorm.py — the stage does the
same pass on the final model) and the classifier is scored on the validation split, so ``val_loss`` /
``val_accuracy`` are the figures the stage's result will have, not those of statistics left behind by weights
that have since moved (digits, prune 0.8: 0.23 stale vs 0.90 re-estimated). Early stopping keeps the weights of
the best epoch on that score and stops after ``patience`` epochs without a better one. Epochs before
``start_epoch`` are scored but never kept: a pruning fine-tune's model only has its target sparsity once the
schedule's ramp has ended. Only the validation split is read; the test split never decides anything here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger(__name__)


class EarlyStoppingConfig(BaseModel):
    """Stop after ``patience`` epochs without a better ``monitor`` (by more than ``min_delta``); the best
    epoch's weights are the stage's result."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    patience: int = Field(2, ge=0)
    monitor: Literal["val_loss", "val_accuracy"] = "val_loss"
    min_delta: float = Field(0.0, ge=0.0)


def validation_callback(classifier, x_val: np.ndarray, y_val: np.ndarray, score: Callable, *,
                        early_stopping: EarlyStoppingConfig | None, start_epoch: int = 0,
                        bn_x: np.ndarray | None = None, bn_samples: int = 0, seed: int = 0):
    """A tf_keras callback that writes ``val_loss`` / ``val_accuracy`` into each epoch's logs (fresh batch-norm
    statistics from ``bn_samples`` rows of ``bn_x``) and, with ``early_stopping``, keeps the best epoch.
    ``score(model, x, y)`` returns {"accuracy", "loss"}. Its ``summary`` says what happened, for the manifest."""
    import tf_keras as keras

    from edgeopt.train.batchnorm import reestimate

    class Validation(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.best, self.best_epoch, self.best_weights, self.wait = None, None, None, 0
            self.last_epoch = -1
            self.summary: dict = {"split": "val", "start_epoch": int(start_epoch)}

        def _better(self, value: float) -> bool:
            if self.best is None:
                return True
            if early_stopping.monitor == "val_loss":
                return value < self.best - early_stopping.min_delta
            return value > self.best + early_stopping.min_delta

        def on_epoch_end(self, epoch, logs=None):
            if bn_samples and bn_x is not None:
                reestimate(classifier, bn_x, bn_samples, seed=seed)
            figures = score(classifier, x_val, y_val)
            if logs is not None:
                logs["val_loss"], logs["val_accuracy"] = figures["loss"], figures["accuracy"]
            self.last_epoch = epoch
            if early_stopping is None or epoch < start_epoch:
                return
            value = figures["loss"] if early_stopping.monitor == "val_loss" else figures["accuracy"]
            if self._better(value):
                self.best, self.best_epoch, self.wait = value, epoch, 0
                self.best_weights = [w.copy() for w in classifier.get_weights()]
                return
            self.wait += 1
            if self.wait >= early_stopping.patience:
                self.model.stop_training = True

        def on_train_end(self, logs=None):
            if early_stopping is None:
                return
            restored = self.best_weights is not None and self.best_epoch != self.last_epoch
            if restored:
                classifier.set_weights(self.best_weights)
                log.info("early stopping: kept epoch %d (%s %.4f) of %d run", self.best_epoch + 1,
                         early_stopping.monitor, self.best, self.last_epoch + 1)
            self.summary.update(monitor=early_stopping.monitor, patience=early_stopping.patience,
                                best_epoch=None if self.best_epoch is None else self.best_epoch + 1,
                                best=None if self.best is None else round(float(self.best), 6),
                                epochs_run=self.last_epoch + 1, restored_best=restored)

    return Validation()
