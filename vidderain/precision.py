"""Numeric precision of the network: float32, or bfloat16 where the device has it natively.

bfloat16 halves the bytes every convolution moves and, on hardware with bfloat16
arithmetic (Intel AMX and AVX-512 BF16, AMD Zen 4 and later, GPUs of compute
capability 8.0 and up), runs the network about twice as fast; elsewhere it is
emulated and slower than float32. `resolve_precision("auto")` therefore asks the
hardware: the GPU's compute capability, or the flags the CPU reports (Linux
`/proc/cpuinfo`). The flags alone mislead: on a 2-core Intel Xeon virtual machine
that lists `avx512_bf16` (but not AMX) bfloat16 ran the network 1.6-1.7x *slower* than
float32, where an AMD Zen 5 one with the same flag ran it 2x faster. So where the
flags say yes, `auto` also times a small convolution stack both ways (about a second,
remembered per CPU in the user's cache folder) and keeps bfloat16 only if it is
faster. Model files always hold float32 weights; bfloat16 is a way of running them.

The network keeps float32 at its two ends: inputs arrive as float32, and any layer
that reads the model's input directly without weights of its own (the residual
subtraction) and everything after it that has no weights runs in float32, so a
residual model subtracts its bfloat16 rain estimate from the exact float32 frame.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vidderain.errors import ParameterError, first_line

if TYPE_CHECKING:
    import keras

PRECISIONS = ("auto", "float32", "bfloat16")
# CPU flags (Linux /proc/cpuinfo) that mean bfloat16 dot products run in hardware.
NATIVE_BF16_CPU_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})
MIXED_POLICY = "mixed_bfloat16"  # Keras policy: bfloat16 compute, float32 variables
# `auto` keeps bfloat16 on a CPU only where the timed check finds it at least this much faster.
MIN_CPU_SPEEDUP = 1.15


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


def cpu_identity(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> str:
    """The CPU's model name and flags as one string (a key for remembering measurements)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return ""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), " ".join(value.split()))
    return " | ".join(fields.get(k, "") for k in ("model name", "flags", "Features"))


def measure_cpu_bf16_speedup(rounds: int = 5) -> float:
    """Time a small convolution stack in float32 and in bfloat16 here; return float32 time / bfloat16 time.

    The stack (three 3x3 convolutions of 64 channels on a 128x128 crop) has the
    shape of the networks' work; the best of `rounds` calls counts, after one call
    that compiles. About a second on a 2-core CPU.
    """
    import keras
    import numpy as np

    x = np.random.default_rng(0).random((1, 128, 128, 16), dtype=np.float32)
    seconds = {}
    for policy in ("float32", MIXED_POLICY):
        inputs = keras.Input((None, None, 16))
        h = inputs
        for _ in range(3):
            h = keras.layers.Conv2D(64, 3, padding="same", activation="relu", dtype=policy)(h)
        model = keras.Model(inputs, h)
        model.predict_on_batch(x)  # compiles
        best = float("inf")
        for _ in range(rounds):
            started = time.perf_counter()
            model.predict_on_batch(x)
            best = min(best, time.perf_counter() - started)
        seconds[policy] = best
    return seconds["float32"] / seconds[MIXED_POLICY]


def _cache_file() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "vidderain" / "precision.json"


def cached_cpu_bf16_speedup(identity: str, measure: Callable[[], float] = measure_cpu_bf16_speedup) -> float:
    """`measure()` for this CPU, remembered in the user's cache folder under `identity`.

    A cache that cannot be read or written is ignored: the check then runs each time.
    """
    cache = _cache_file()
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError):
        known = {}
    import keras

    key = f"{hashlib.sha256(identity.encode()).hexdigest()[:16]} keras {keras.__version__} {keras.backend.backend()}"
    if isinstance(known, dict) and isinstance(known.get(key), (int, float)):
        return float(known[key])
    speedup = measure()
    if not isinstance(known, dict):
        known = {}
    known[key] = round(speedup, 3)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        temporary = cache.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(known, indent=1))
        os.replace(temporary, cache)
    except OSError:
        pass
    return speedup


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


def resolve_precision(requested: str, cpuinfo: str | os.PathLike = "/proc/cpuinfo",
                      cpu_speedup: Callable[[str], float] = cached_cpu_bf16_speedup) -> Precision:
    """Turn "auto", "float32" or "bfloat16" into the precision to run at, with the reason.

    "auto" chooses bfloat16 on a GPU of compute capability 8.0 or more, or, without a
    GPU, on a CPU that lists `amx_bf16` or `avx512_bf16` and where bfloat16 measures at
    least MIN_CPU_SPEEDUP times faster (`cpu_speedup(identity)`: timed once per CPU and
    remembered); float32 otherwise, including where the CPU's flags cannot be read (not Linux).

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
    if not flags:
        return Precision("float32", "CPU without native bfloat16")
    listed = ", ".join(sorted(flags))
    try:
        speedup = cpu_speedup(cpu_identity(cpuinfo))
    except Exception as exc:  # a backend that cannot run the check cannot be trusted to run bfloat16 well
        return Precision("float32", f"CPU lists {listed} but the bfloat16 check failed ({first_line(exc)})")
    if speedup >= MIN_CPU_SPEEDUP:
        return Precision("bfloat16", f"CPU has {listed}, measured {speedup:.1f}x float32's speed")
    return Precision("float32", f"CPU lists {listed} but bfloat16 measured {speedup:.2f}x float32's speed here")


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
