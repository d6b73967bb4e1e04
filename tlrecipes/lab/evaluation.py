"""Accuracy of a classifier, once (`accuracy_of`) or along training."""

from __future__ import annotations

import keras
import numpy as np

__all__ = ["LearningCurve", "accuracy_of"]


class LearningCurve(keras.callbacks.Callback):
    """Accuracy on one split at chosen epochs, with the optimisation step it was at.

    With `keep_best=True` (the split is validation), it also keeps a copy of
    the model's weights at the best point so far (`best_weights`; ties keep
    the earliest), so the run's final model is its best-validation point.
    """

    def __init__(self, x, y, eval_epochs, steps_per_epoch, batch_size, keep_best=False):
        super().__init__()
        self.offset = 0  # epochs already run by an earlier `fit` of the same run
        self.x, self.y = x, y
        self.eval_epochs = set(eval_epochs)
        self.steps_per_epoch = steps_per_epoch
        self.batch_size = batch_size
        self.keep_best = keep_best
        self.steps: list[int] = []
        self.accuracy: list[float] = []
        self.best_accuracy: float | None = None
        self.best_step: int | None = None
        self.best_weights: list | None = None

    def on_epoch_end(self, epoch, logs=None):
        epoch += self.offset
        if epoch + 1 in self.eval_epochs:
            step = (epoch + 1) * self.steps_per_epoch
            accuracy = accuracy_of(self.model, self.x, self.y, self.batch_size)
            self.steps.append(step)
            self.accuracy.append(accuracy)
            if self.keep_best and (
                self.best_accuracy is None or accuracy > self.best_accuracy
            ):
                self.best_accuracy, self.best_step = accuracy, step
                self.best_weights = self.model.get_weights()


def accuracy_of(
    model: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int = 256
) -> float:
    """Test accuracy of a softmax classifier, rounded to 6 decimals."""
    probs = model.predict(x, batch_size=max(batch_size, 256), verbose=0)
    return round(float(np.mean(np.argmax(probs, axis=-1) == y)), 6)
