"""Precision: what `auto` chooses, and a bfloat16 network that stays close to float32."""

from __future__ import annotations

import numpy as np
import pytest

from vidderain.errors import ParameterError
from vidderain.metrics import psnr
from vidderain.precision import (
    FLOAT32,
    Precision,
    at_precision,
    cached_cpu_bf16_speedup,
    cpu_bf16_flags,
    measure_cpu_bf16_speedup,
    resolve_precision,
)

BF16 = Precision("bfloat16", "asked for")


def cpuinfo(tmp_path, flags: str):
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu sse2 avx2 {flags}\n\n"
                    f"processor\t: 1\nflags\t\t: fpu sse2 avx2 {flags}\n")
    return path


def fast(_identity):
    return 2.0  # bfloat16 measured twice float32's speed


def slow(_identity):
    return 0.55  # measured on a 2-core Intel Xeon VM that lists avx512_bf16 without AMX


@pytest.mark.parametrize(("flags", "expected"), [
    ("avx512f amx_bf16 amx_tile", "bfloat16"),
    ("avx512f avx512_bf16", "bfloat16"),
    ("avx512f avx512_vnni", "float32"),
    ("", "float32"),
])
def test_auto_follows_the_cpus_bfloat16_flags_where_bfloat16_measures_faster(tmp_path, flags, expected):
    chosen = resolve_precision("auto", cpuinfo(tmp_path, flags), cpu_speedup=fast)
    assert chosen.name == expected


def test_auto_keeps_float32_where_the_flags_promise_bfloat16_but_it_measures_slower(tmp_path):
    chosen = resolve_precision("auto", cpuinfo(tmp_path, "avx512f avx512_bf16"), cpu_speedup=slow)
    assert chosen.name == "float32"
    assert "avx512_bf16" in chosen.reason and "0.55x" in chosen.reason


def test_auto_keeps_float32_where_the_bfloat16_check_fails(tmp_path):
    def broken(identity):
        raise RuntimeError("no bfloat16 kernel for Conv2D\nmore detail")

    chosen = resolve_precision("auto", cpuinfo(tmp_path, "avx512f avx512_bf16"), cpu_speedup=broken)
    assert chosen.name == "float32"
    assert chosen.reason == "CPU lists avx512_bf16 but the bfloat16 check failed (no bfloat16 kernel for Conv2D)"


def test_auto_measures_only_where_the_flags_promise_bfloat16(tmp_path):
    asked = []
    resolve_precision("auto", cpuinfo(tmp_path, "avx2"), cpu_speedup=asked.append)
    resolve_precision("bfloat16", cpuinfo(tmp_path, "avx512_bf16"), cpu_speedup=asked.append)
    assert asked == []


def test_the_measurement_is_remembered_per_cpu(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    calls = []

    def measure():
        calls.append(1)
        return 1.9

    assert cached_cpu_bf16_speedup("cpu A", measure) == 1.9
    assert cached_cpu_bf16_speedup("cpu A", measure) == 1.9
    assert cached_cpu_bf16_speedup("cpu B", measure) == 1.9
    assert len(calls) == 2  # once per CPU
    cache = tmp_path / "cache" / "vidderain" / "precision.json"
    cache.write_text("not json")  # a damaged cache is measured again and rewritten
    assert cached_cpu_bf16_speedup("cpu A", measure) == 1.9 and len(calls) == 3
    assert cached_cpu_bf16_speedup("cpu A", measure) == 1.9 and len(calls) == 3


def test_the_real_measurement_times_both_precisions():
    speedup = measure_cpu_bf16_speedup(rounds=1)
    assert np.isfinite(speedup) and 0.05 < speedup < 20


def test_auto_is_float32_where_the_cpu_cannot_be_read(tmp_path):
    chosen = resolve_precision("auto", tmp_path / "no-such-file", cpu_speedup=fast)
    assert chosen.name == "float32" and "without" in chosen.reason


def test_arm_features_line_is_read(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\nFeatures\t: fp asimd bf16 sve\n")
    assert cpu_bf16_flags(path) == frozenset()  # Arm's 'bf16' is not one of the flags auto trusts
    path.write_text("processor\t: 0\nflags\t: avx512_bf16\n")
    assert cpu_bf16_flags(path) == {"avx512_bf16"}


@pytest.mark.parametrize("name", ["float32", "bfloat16"])
def test_an_explicit_precision_is_kept_whatever_the_cpu(tmp_path, name):
    assert resolve_precision(name, cpuinfo(tmp_path, "")).name == name


def test_an_unknown_precision_names_the_setting():
    with pytest.raises(ParameterError, match="precision"):
        resolve_precision("fp16")


def test_float32_runs_the_model_itself(trained_model):
    assert at_precision(trained_model.model, FLOAT32) is trained_model.model


def test_bfloat16_copy_is_within_45_db_of_float32_on_a_drawn_image(trained_model, make_natural_image, make_rainy):
    rainy = make_rainy(make_natural_image(96, 128, seed=4), seed=4)[None]
    exact = np.asarray(trained_model.model.predict_on_batch(rainy))
    copy = at_precision(trained_model.model, BF16)
    fast = np.asarray(copy.predict_on_batch(rainy))
    assert fast.dtype == np.float32 and fast.shape == exact.shape
    assert not np.array_equal(fast, exact)  # it really computed in bfloat16
    assert psnr(fast[0], exact[0]) >= 45.0


def test_bfloat16_copy_subtracts_the_rain_from_the_exact_input(trained_model):
    # The residual subtraction runs in float32: where the network adds no rain estimate, a
    # 16-bit level survives, which a bfloat16 subtraction (8 significant bits) would round away.
    copy = at_precision(trained_model.model, BF16)
    policies = {layer.name: layer.dtype_policy.name for layer in copy.layers}
    subtract = [name for name in policies if name.endswith("_subtract")]
    assert subtract and all(policies[name] == "float32" for name in subtract)
    assert any(policy == "mixed_bfloat16" for policy in policies.values())


def test_where_no_rain_is_found_a_16_bit_ramp_comes_through_bfloat16_unchanged(trained_model):
    from vidderain.pixels import to_float, to_integer

    # With the rain head silenced the network finds no rain anywhere: its output must be the
    # exact input, which a bfloat16 subtraction (8 significant bits) could not give back.
    model = trained_model.model
    copy = at_precision(model, BF16)
    head = next(layer for layer in copy.layers if layer.name.endswith("_rain"))
    head.set_weights([np.zeros_like(w) for w in head.get_weights()])
    ramp16 = np.linspace(1000, 64000, 64 * 64 * 3).astype(np.uint16).reshape(1, 64, 64, 3)
    out = np.asarray(copy.predict_on_batch(to_float(ramp16)))
    np.testing.assert_array_equal(to_integer(out, np.uint16), ramp16)


def test_bfloat16_copy_has_the_same_weights(trained_model):
    copy = at_precision(trained_model.model, BF16)
    for a, b in zip(trained_model.model.get_weights(), copy.get_weights()):
        np.testing.assert_array_equal(a, b)
