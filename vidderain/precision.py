"""Numeric precision of the network: float32, or bfloat16 where the device has it natively.

bfloat16 halves the bytes every convolution moves and, on hardware with bfloat16
arithmetic (Intel AMX and AVX-512 BF16, AMD Zen 4 and later, GPUs of compute
capability 8.0 and up), runs the network about twice as fast; elsewhere it is
emulated and slower than float32. `resolve_precision("auto")` therefore asks the
hardware: the flags the CPU reports (Linux `/proc/cpuinfo`), or the GPU's compute
capability. Model files always hold float32 weights; bfloat16 is a way of running them.

The network keeps float32 at its two ends: inputs arrive as float32, and any layer
that reads the model's input directly without weights of its own (the residual
subtraction) and everything after it that has no weights runs in float32, so a
residual model subtracts its bfloat16 rain estimate from the exact float32 frame.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vidderain.errors import ParameterError

if TYPE_CHECKING:
    import keras

PRECISIONS = ("auto", "float32", "bfloat16")
# CPU flags (Linux /proc/cpuinfo) that mean bfloat16 dot products run in hardware.
NATIVE_BF16_CPU_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})
MIXED_POLICY = "mixed_bfloat16"  # Keras policy: bfloat16 compute, float32 variables


@dataclass(frozen=True)
class Precision:
    """A resolved precision and why it was chosen.

    Attributes:
        name: str. "float32" or "bfloat16".
        reason: str. Why, in a few words for the user ("CPU has avx512_bf16", "asked for").
    """

    name: str
    reason: str

    @property
    def policy(self) -> str:
        """The Keras dtype policy that runs a network at this precision."""
        return MIXED_POLICY if self.name == "bfloat16" else "float32"

    def describe(self) -> str:
        """One phrase for the CLI's first line, e.g. "bfloat16 (CPU has avx512_bf16)"."""
        return f"{self.name} ({self.reason})"


FLOAT32 = Precision("float32", "the default")


def check_precision(requested: str) -> None:
    """Raise ParameterError naming the value if `requested` is not one of PRECISIONS."""
    if requested not in PRECISIONS:
        raise ParameterError("precision", requested, f"one of {', '.join(PRECISIONS)}")


def cpu_bf16_flags(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> frozenset[str]:
    """The native-bfloat16 flags this CPU reports; empty where none or where the file is absent."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):  # x86 says flags; Arm says Features
            return NATIVE_BF16_CPU_FLAGS & set(value.split())
    return frozenset()


def gpu_compute_capability() -> tuple[int, int] | None:
    """Compute capability of the first GPU the Keras backend sees, or None without one."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf  # only to ask the backend about its devices

        for gpu in tf.config.list_physical_devices("GPU"):
            capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
            if capability:
                return int(capability[0]), int(capability[1])
    elif backend == "jax":
        import jax

        for device in jax.devices():
            capability = getattr(device, "compute_capability", None)
            if device.platform == "gpu" and capability:
                major, _, minor = str(capability).partition(".")
                return int(major), int(minor or 0)
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            return tuple(torch.cuda.get_device_capability(0))  # type: ignore[return-value]
    return None


def resolve_precision(requested: str, cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> Precision:
    """Turn "auto", "float32" or "bfloat16" into the precision to run at, with the reason.

    "auto" chooses bfloat16 on a GPU of compute capability 8.0 or more, or, without a
    GPU, on a CPU that lists `amx_bf16` or `avx512_bf16`; float32 otherwise, including
    where the CPU's flags cannot be read (not Linux).

    Raises:
        ParameterError: `requested` is not one of PRECISIONS.
    """
    check_precision(requested)
    if requested != "auto":
        return Precision(requested, "asked for")
    capability = gpu_compute_capability()
    if capability is not None:
        version = f"{capability[0]}.{capability[1]}"
        if capability >= (8, 0):
            return Precision("bfloat16", f"GPU of compute capability {version}")
        return Precision("float32", f"GPU of compute capability {version} has no fast bfloat16")
    flags = cpu_bf16_flags(cpuinfo)
    if flags:
        return Precision("bfloat16", f"CPU has {', '.join(sorted(flags))}")
    return Precision("float32", "CPU without native bfloat16")


def _float32_tail(model: "keras.Model") -> set[str]:
    """Names of the layers that stay float32.

    Those that read the model's input directly and learn nothing (the residual
    subtraction; a temporal model's fixed pick of its centre frame), and every
    weightless layer after them (the clipping of the output).
    """
    import keras

    inputs = {id(t) for t in model.inputs}
    keep: set[str] = set()
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        sources = layer.input if isinstance(layer.input, list) else [layer.input]
        reads_input = any(id(t) in inputs for t in sources)
        follows_kept = any(t._keras_history.operation.name in keep for t in sources)
        fixed = not layer.weights or not layer.trainable
        if fixed and (reads_input or follows_kept):
            keep.add(layer.name)
    return keep


def at_precision(model: "keras.Model", precision: Precision) -> "keras.Model":
    """`model` itself at float32, or a copy with the same weights that computes in bfloat16.

    The copy's weighted layers compute in bfloat16 with float32 variables (Keras's
    mixed_bfloat16); its inputs and outputs stay float32 and the layers named by
    `_float32_tail` (the residual subtraction and the clipping after it) run in float32.

    Args:
        model: keras.Model. A float32 functional model.
        precision: Precision. What to run at.
    """
    if precision.name == "float32":
        return model
    import keras

    tail = _float32_tail(model)

    def clone(layer):
        config = layer.get_config()
        config["dtype"] = "float32" if layer.name in tail else MIXED_POLICY
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    # The output is float32 for the engine whatever the last layer computes in.
    if copy.outputs[0].dtype != "float32":
        out = keras.layers.Activation("linear", dtype="float32", name=f"{model.name}_float32_output")(copy.outputs[0])
        copy = keras.Model(copy.inputs, out, name=model.name)
    return copy
