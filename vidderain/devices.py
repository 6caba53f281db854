"""Which device the Keras backend computes on, in words for the user.

Keras is imported when a device is described, not with this module: importing it
takes seconds, which commands that compute nothing should not wait for.
"""

from __future__ import annotations

import os


def describe_device() -> str:
    """Name the device the current Keras backend will run on, e.g. "GPU (NVIDIA H100)" or "CPU (2 cores)"."""
    import keras

    backend = keras.backend.backend()
    gpus: list[str] = []
    if backend == "tensorflow":
        import tensorflow as tf  # only to ask which devices the backend sees

        gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
        names = []
        for gpu in tf.config.list_physical_devices("GPU"):
            details = tf.config.experimental.get_device_details(gpu)
            names.append(details.get("device_name", gpu.name))
        gpus = names or gpus
    elif backend == "jax":
        import jax

        gpus = [d.device_kind for d in jax.devices() if d.platform == "gpu"]
    elif backend == "torch":
        import torch

        gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    if gpus:
        label = gpus[0] if len(set(gpus)) == 1 else ", ".join(gpus)
        count = f"{len(gpus)}x " if len(gpus) > 1 else ""
        return f"GPU ({count}{label}, {backend})"
    return f"CPU ({os.cpu_count()} cores, {backend})"
