"""How `vidderain train` spreads one run over devices and machines, chosen from the environment.

- TensorFlow backend with `TF_CONFIG` set: `tf.distribute.MultiWorkerMirroredStrategy`,
  one process per machine, every local GPU of each a replica. The chief (task `chief`,
  or `worker` 0 when the cluster has no chief) writes the checkpoints, the run folder
  and the exported model; the other workers write theirs to a temporary folder.
- TensorFlow backend with several local GPUs: `tf.distribute.MirroredStrategy`.
- JAX backend with several visible devices: `keras.distribution.DataParallel`.
- Otherwise one device and the plain Keras loop.

The global batch (`--batch`) is split evenly over the replicas: replica `r` of `n` takes
rows `r*batch/n` to `(r+1)*batch/n` of the very batch a one-device run draws, and the
gradients are averaged, so a step's data, and resuming, do not depend on the cluster.
TensorFlow is imported only on the TensorFlow backend.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from vidderain.errors import InputError, ParameterError


@dataclass(frozen=True)
class Distribution:
    """Where a training run's replicas live and who writes its files.

    Attributes:
        name: str. What runs the replicas, in words ("one device", "MirroredStrategy" ...).
        replicas: int. Replicas in sync over the whole cluster; the global batch is split over them.
        workers: int. Processes (machines) taking part. Defaults to 1.
        is_chief: bool. This process writes the run's final files. Defaults to True.
        strategy: tf.distribute.Strategy or None. Set for the TensorFlow strategies.
        keras_distribution: keras.distribution.Distribution or None. Set for JAX data parallelism.
    """

    name: str
    replicas: int
    workers: int = 1
    is_chief: bool = True
    strategy: Any = None
    keras_distribution: Any = None

    @property
    def distributed(self) -> bool:
        """True when the model's variables are placed by a strategy or a Keras distribution."""
        return self.strategy is not None or self.keras_distribution is not None

    def describe(self) -> str:
        """One line for the user, e.g. "MultiWorkerMirroredStrategy: 2 workers, 2 replicas, chief"."""
        if not self.distributed:
            return self.name
        role = "" if self.workers == 1 else (", chief" if self.is_chief else ", not chief")
        workers = f"{self.workers} workers, " if self.workers > 1 else ""
        return f"{self.name}: {workers}{self.replicas} replicas{role}"

    def check_batch(self, batch: int) -> None:
        """Raise ParameterError if the global batch does not split evenly over the replicas."""
        if batch % self.replicas:
            raise ParameterError("batch", batch, f"a multiple of the {self.replicas} replicas of {self.name}")

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        """Variables created (and Keras steps run) inside are placed for this distribution."""
        if self.strategy is not None:
            with self.strategy.scope():
                yield
        elif self.keras_distribution is not None:
            with self.keras_distribution.scope():
                yield
        else:
            yield

    def make_train_step(self, model: keras.Model) -> Callable[[np.ndarray, np.ndarray], float]:
        """A function taking one optimizer step of the compiled `model` on a global batch (x, y).

        It returns the step's mean loss over the whole global batch.
        """
        if self.strategy is None:

            def local_step(x: np.ndarray, y: np.ndarray) -> float:
                # JAX's trainer shards the batch over the distribution's devices itself.
                with self.scope():
                    return float(np.asarray(model.train_on_batch(x, y)))

            return local_step
        import tensorflow as tf

        # Not `train_on_batch`: it would hand every replica the whole batch, and Keras 3's
        # reduction of its logs fails under MultiWorkerMirroredStrategy (tensorflow#72388).
        # Keras's own `train_step` runs on each replica's rows; the optimizer all-reduces.
        replicated_step = tf.function(lambda data: self.strategy.run(model.train_step, args=(data,)))

        def distributed_step(x: np.ndarray, y: np.ndarray) -> float:
            per_replica = x.shape[0] // self.replicas

            def rows(context) -> tuple[np.ndarray, np.ndarray]:
                part = slice(context.replica_id_in_sync_group * per_replica,
                             (context.replica_id_in_sync_group + 1) * per_replica)
                return x[part], y[part]

            model.reset_metrics()  # as train_on_batch does: the loss is this step's alone
            replicated_step(self.strategy.experimental_distribute_values_from_function(rows))
            # Read outside the replicas, the loss tracker sums over all of them: the global mean.
            return float(np.asarray(model.get_metrics_result()["loss"]))

        return distributed_step


ONE_DEVICE = Distribution(name="one device", replicas=1)


def chief_of(tf_config: Mapping[str, Any]) -> tuple[str, int]:
    """The (task type, index) that writes a multi-worker run's files: `chief` 0, else `worker` 0."""
    cluster = tf_config.get("cluster", {})
    return ("chief", 0) if cluster.get("chief") else ("worker", 0)


def pick_distribution(environ: Mapping[str, str] | None = None) -> Distribution:
    """Choose how to train from the backend, `TF_CONFIG` and the visible devices.

    Call it before anything else touches the backend: TensorFlow's multi-worker strategy
    must be created before its runtime starts.

    Args:
        environ: mapping or None. The environment to read `TF_CONFIG` from. Defaults to os.environ.

    Raises:
        InputError: `TF_CONFIG` is not valid JSON or lacks this task, or it is set under another backend.
    """
    environ = os.environ if environ is None else environ
    backend = keras.backend.backend()
    tf_config_text = environ.get("TF_CONFIG", "").strip()
    if tf_config_text and backend != "tensorflow":
        raise InputError(f"TF_CONFIG is set, but multi-worker training needs the TensorFlow backend, not {backend}")
    if backend == "jax":
        return _jax_distribution()
    if backend != "tensorflow":
        return ONE_DEVICE
    import tensorflow as tf  # only here: the strategies are TensorFlow's

    if tf_config_text:
        try:
            tf_config = json.loads(tf_config_text)
            task = tf_config["task"]
            task_type, task_index = task["type"], int(task["index"])
        except (ValueError, KeyError, TypeError):
            raise InputError('TF_CONFIG must be JSON with "cluster" and "task": {"type", "index"}. '
                             f"Received: {tf_config_text[:200]}") from None
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        workers = sum(len(tasks) for name, tasks in tf_config.get("cluster", {}).items() if name in ("chief", "worker"))
        return Distribution(name="MultiWorkerMirroredStrategy", replicas=strategy.num_replicas_in_sync,
                            workers=workers, is_chief=(task_type, task_index) == chief_of(tf_config),
                            strategy=strategy)
    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) > 1:
        strategy = tf.distribute.MirroredStrategy()
        return Distribution(name="MirroredStrategy", replicas=strategy.num_replicas_in_sync, strategy=strategy)
    return ONE_DEVICE


def mirrored_distribution(devices: list[str]) -> Distribution:
    """A `MirroredStrategy` over the named TensorFlow devices (e.g. two logical CPUs in a test)."""
    import tensorflow as tf

    strategy = tf.distribute.MirroredStrategy(devices)
    return Distribution(name="MirroredStrategy", replicas=strategy.num_replicas_in_sync, strategy=strategy)


def _jax_distribution() -> Distribution:
    devices = keras.distribution.list_devices()
    if len(devices) < 2:
        return ONE_DEVICE
    return Distribution(name="keras.distribution.DataParallel", replicas=len(devices),
                        keras_distribution=keras.distribution.DataParallel(devices=devices))
