"""Training callbacks: a rich progress bar per epoch and one log line per epoch (also kept as JSON lines)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import tf_keras as keras

from edge_fer import ui


def current_learning_rate(optimizer) -> float:
    rate = optimizer.learning_rate
    if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule):
        rate = rate(optimizer.iterations)
    return float(keras.backend.get_value(rate))


def read_history(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class EpochLog(keras.callbacks.Callback):
    def __init__(self, stage: str, epochs: int, history_path: Path | None, steps: int):
        """history_path None: log only (a worker that is not the chief writes nothing)."""
        super().__init__()
        self.stage, self.epochs, self.history_path, self.steps = stage, epochs, history_path, steps
        self.bar = None
        self.first_epoch = True  # one EpochLog per fit

    def on_epoch_begin(self, epoch, logs=None):
        if self.first_epoch and epoch > 0:
            ui.log(f"[{self.stage}] resumed from the end-of-epoch backup: epochs 1-{epoch} are done, "
                   f"epoch {epoch + 1} starts")
        self.first_epoch = False
        self.started = time.perf_counter()
        self.bar = ui.progress()
        self.bar.start()
        self.task = self.bar.add_task(f"{self.stage} epoch {epoch + 1}/{self.epochs}", total=self.steps)

    def on_train_batch_end(self, batch, logs=None):
        self.bar.update(self.task, completed=batch + 1)

    def on_epoch_end(self, epoch, logs=None):
        self.bar.stop()
        logs = dict(logs or {})
        record = {"stage": self.stage, "epoch": epoch + 1, "seconds": round(time.perf_counter() - self.started, 1),
                  "learning_rate": current_learning_rate(self.model.optimizer),
                  **{key: float(value) for key, value in logs.items() if key != "lr" and key != "learning_rate"}}
        if self.history_path is not None:
            with open(self.history_path, "a") as stream:
                stream.write(json.dumps(record) + "\n")
        ui.log(
            f"[{self.stage}] epoch {epoch + 1}/{self.epochs}  loss {record.get('loss', float('nan')):.4f}  "
            f"acc {record.get('accuracy', float('nan')):.4f}  val_loss {record.get('val_loss', float('nan')):.4f}  "
            f"val_acc {record.get('val_accuracy', float('nan')):.4f}  lr {record['learning_rate']:.2e}  {record['seconds']}s"
        )


def recalibrate_batchnorm(model, batches) -> int:
    """'Precise BN': replace the moving statistics of every trainable BatchNorm with their average over
    `batches` (un-augmented training images). From-scratch training moves the weights faster than the
    moving averages follow, and inference on lagging statistics can sit at chance while training-mode
    accuracy climbs."""
    layers = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization) and l.trainable]
    if not layers:
        return 0
    saved = [layer.momentum for layer in layers]
    count = 0
    for count, (images, _) in enumerate(batches, start=1):
        for layer in layers:
            layer.momentum = (count - 1) / count  # running mean of the per-batch statistics
        model(images, training=True)
    for layer, momentum in zip(layers, saved):
        layer.momentum = momentum
    return count


class PreciseBatchNorm(keras.callbacks.Callback):
    """Recalibrates BatchNorm statistics right before each validation pass (and so before checkpoints)."""

    def __init__(self, batches):
        super().__init__()
        self.batches = batches

    def on_test_begin(self, logs=None):
        recalibrate_batchnorm(self.model, self.batches)


class AverageWeights:
    """Validation and checkpoints on the optimizer's moving average of the weights (`use_ema`), training on the
    weights themselves. `swap_in` goes first in the callback list: before validation it exchanges every trainable
    variable with its average. `swap_out` goes after the checkpoint and before the resume backup: at the epoch's end
    it exchanges them back, so training and its backup go on from the trained weights. Without `use_ema` both do
    nothing. At the end of `fit`, Keras itself writes the averages into the model."""

    def __init__(self):
        self.swapped = False
        self.swap_in = keras.callbacks.LambdaCallback(on_test_begin=lambda logs: self.exchange(want=True))
        self.swap_out = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: self.exchange(want=False))

    def exchange(self, want: bool) -> None:
        model = self.swap_in.model
        optimizer = model.optimizer
        if want == self.swapped or not getattr(optimizer, "use_ema", False):
            return
        for variable in model.trainable_variables:
            index = optimizer._index_dict.get(optimizer._var_key(variable))
            if index is None:
                continue
            average = optimizer._model_variables_moving_average[index]
            trained = variable.read_value()
            variable.assign(average)
            average.assign(trained)
        self.swapped = want
