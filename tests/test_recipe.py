"""Training recipe options: augmentation, mixed synthetic rain, a schedule planned once, legacy runs."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from vidderain.data.patches import PatchBatches, augment
from vidderain.errors import ParameterError
from vidderain.train.trainer import LEGACY_SETTINGS, PlannedDecay, TrainSettings


def marked_pair(height=40, width=40):
    # An image whose every pixel is distinct, so any rotation or flip shows.
    clean = np.arange(height * width * 3, dtype=np.float32).reshape(height, width, 3) / (height * width * 3)
    return clean + 0.001, clean


def orientation(crop: np.ndarray, source: np.ndarray) -> set[str]:
    return {name for name, view in (("same", source), ("mirror", source[:, ::-1]),
                                    ("rot90", np.rot90(source)), ("rot180", np.rot90(source, 2)))
            if any(np.array_equal(crop, view[y:y + crop.shape[0], x:x + crop.shape[1]])
                   for y in range(view.shape[0] - crop.shape[0] + 1) for x in range(view.shape[1] - crop.shape[1] + 1))}


def test_flip_augmentation_never_turns_a_crop():
    rng = np.random.default_rng(0)
    image = marked_pair()[1]
    seen = set()
    for _ in range(40):
        (out,) = augment([image], rng, "flip")
        assert np.array_equal(out, image) or np.array_equal(out, image[:, ::-1])
        seen.add(np.array_equal(out, image))
    assert seen == {True, False}  # both orientations occur


def test_flip_and_rot90_augmentation_turns_crops():
    rng = np.random.default_rng(0)
    image = marked_pair()[1]
    turned = sum(out.shape == image.shape and not np.array_equal(out, image) and not np.array_equal(out, image[:, ::-1])
                 for (out,) in (augment([image], rng, "flip+rot90") for _ in range(40)))
    assert turned > 10


def test_highlights_are_drawn_alike_into_both_sides_of_some_crops():
    rng = np.random.default_rng(0)
    # Flat images, so a mirror changes nothing and what the augmentation adds shows alone.
    rainy, clean = np.full((96, 96, 3), 0.3, np.float32), np.full((96, 96, 3), 0.2, np.float32)
    lit = 0
    for _ in range(100):
        out_rainy, out_clean = augment([rainy, clean], rng, "flip+highlights")
        layer = (out_clean - clean) / (1 - clean)  # screen blend: clean + layer - clean * layer
        assert (layer >= -1e-6).all() and (layer <= 1 + 1e-6).all()
        np.testing.assert_allclose(out_rainy, rainy + layer - rainy * layer, atol=1e-6)  # the same curves
        lit += bool((layer > 0.1).any())
    # HIGHLIGHT_SHARE (0.35) of the crops get curves; some fall outside a 96 px crop (32 % of
    # 2,000 crops show one).
    assert 20 < lit < 45


def test_flip_only_draws_what_it_did_before_highlights_existed():
    # A run begun before "flip+highlights" existed must see the same batches when resumed.
    rng, again = np.random.default_rng(5), np.random.default_rng(5)
    image = marked_pair()[1]
    for _ in range(10):
        (out,) = augment([image], rng, "flip")
        expected = image[:, ::-1] if bool(again.integers(2)) else image
        assert np.array_equal(out, expected)


def test_dark_dims_the_scene_of_some_crops_and_keeps_their_rain_as_bright():
    # A flat scene at 0.6 with one streak adding 0.3 down the middle column.
    clean = np.full((48, 48, 3), 0.6, np.float32)
    rainy = clean.copy()
    rainy[:, 24] += 0.3
    batches = PatchBatches([(rainy, clean)], batch=16, patch=16, steps=20, augment="flip+highlights+dark", seed=1)
    dimmed = streaked = 0
    for i in range(len(batches)):
        for r, c in zip(*batches[i]):
            rain = r - c
            assert rain.min() > -1e-6  # nothing darker than its scene
            level = float(np.median(c))
            if level > 0.59:  # not dimmed (highlights only brighten)
                continue
            dimmed += 1
            assert 0.6 * 0.03 - 1e-6 <= level <= 0.6 * 0.35 + 1e-6  # DARK_GAIN
            if rain.max() > 0.01:
                streaked += 1
                assert rain.max() > 0.2  # the streak kept its brightness, not dimmed with the scene
    # DARK_SHARE (0.3) of 320 crops; about half of the crops hold the streak's column.
    assert 70 < dimmed < 125 and streaked > 20


def test_twins_lay_the_same_rain_over_one_coloured_scene_added_and_screen_blended():
    # A flat grey scene with one streak adding 0.3 down the middle column.
    clean = np.full((48, 48, 3), 0.5, np.float32)
    rainy = clean.copy()
    rainy[:, 24] += 0.3
    batches = PatchBatches([(rainy, clean)], batch=16, patch=16, steps=30, augment="flip+highlights+dark+twins",
                           seed=2)
    starts = streaked = 0
    for i in range(len(batches)):
        rainy_crops, clean_crops = batches[i]
        b = 0
        while b < len(clean_crops):
            c = clean_crops[b]
            levels = np.median(c.reshape(-1, 3), axis=0)
            if levels.max() - levels.min() < 0.05:  # grey: a crop as it was, dimmed or lit; not a twin
                b += 1
                continue
            starts += 1
            assert b + 1 < len(clean_crops) and np.array_equal(clean_crops[b + 1], c)  # one clean side for both
            added, screened = rainy_crops[b] - c, rainy_crops[b + 1] - c
            assert added.min() > -1e-6
            assert levels.max() >= 0.5 * 0.6 - 1e-6 and levels.min() <= 0.7 * levels.max() + 1e-6  # a saturated colour
            unclipped = rainy_crops[b] < 1 - 1e-6
            np.testing.assert_allclose(screened[unclipped], (added * (1 - c))[unclipped], atol=1e-5)
            if added.max() > 0.01:
                streaked += 1
                assert added.max() == pytest.approx(0.3, abs=1e-5)  # the pair's own rain, as bright
                assert (screened <= added + 1e-6).all() and screened.max() < 0.3  # less where the colour is bright
            b += 2
    # TWIN_SHARE (0.12) of the slots not taken by a twin start one: about 50 of 480.
    assert 25 < starts < 85 and streaked > 5


def test_batches_keep_the_direction_of_rain_with_flip_only():
    rainy, clean = marked_pair(48, 48)
    batches = PatchBatches([(rainy, clean)], batch=8, patch=16, steps=4, augment="flip")
    for i in range(4):
        _, crops = batches[i]
        for crop in crops:
            assert orientation(crop, clean) <= {"same", "mirror"} and orientation(crop, clean)


def synthetic_marker(clean, rng):
    return np.full_like(clean, 0.5)  # recognisable: a synthesized crop is all 0.5


@pytest.mark.parametrize("mix", [0.0, 0.3, 1.0])
def test_rain_mix_is_the_share_of_crops_with_synthetic_rain(mix):
    rainy, clean = marked_pair(48, 48)
    batches = PatchBatches([(rainy, clean)], batch=16, patch=16, steps=20, synthesize=synthetic_marker,
                           rain_mix=mix, augment="flip")
    made = [np.all(crop == 0.5) for i in range(20) for crop in batches[i][0]]
    assert abs(np.mean(made) - mix) < 0.08
    # A crop that keeps its pair's rain is the pair's own rainy crop, aligned with its clean crop.
    for i in range(3):
        rainy_crops, clean_crops = batches[i]
        for r, c in zip(rainy_crops, clean_crops):
            assert np.all(r == 0.5) or np.allclose(r, c + 0.001)


def test_extra_clean_frames_always_get_synthetic_rain():
    rainy, clean = marked_pair(48, 48)
    extra = np.full((48, 48, 3), 0.25, np.float32)
    batches = PatchBatches([(rainy, clean)], batch=16, patch=16, steps=10, synthesize=synthetic_marker,
                           rain_mix=0.0, extra_clean=[extra], augment="flip")
    pairs_seen = extra_seen = 0
    for i in range(10):
        rainy_crops, clean_crops = batches[i]
        for r, c in zip(rainy_crops, clean_crops):
            if np.all(c == 0.25):
                extra_seen += 1
                assert np.all(r == 0.5)
            else:
                pairs_seen += 1
                assert not np.all(r == 0.5)
    assert pairs_seen and extra_seen


def test_a_batch_is_a_pure_function_of_its_index_with_rain_mix():
    rainy, clean = marked_pair(48, 48)

    def noisy(c, rng):
        return np.clip(c + rng.random(c.shape, dtype=np.float32) * 0.1, 0, 1)

    a = PatchBatches([(rainy, clean)], batch=4, patch=16, steps=9, synthesize=noisy, rain_mix=0.5, seed=3)
    b = PatchBatches([(rainy, clean)], batch=4, patch=16, steps=9, synthesize=noisy, rain_mix=0.5, seed=3)
    for i in (8, 2, 5):
        np.testing.assert_array_equal(a[i][0], b[i][0])


def test_rain_mix_outside_zero_one_is_refused_naming_the_setting():
    rainy, clean = marked_pair()
    with pytest.raises(ParameterError, match="rain_mix"):
        PatchBatches([(rainy, clean)], batch=2, patch=16, steps=1, synthesize=synthetic_marker, rain_mix=1.5)


# The schedule ------------------------------------------------------------------------------


def test_planned_schedule_equals_keras_cosine_decay_with_warmup():
    settings = TrainSettings(steps=1000, warmup=100, lr=1e-3)
    planned = PlannedDecay.plan(settings)
    keras_schedule = keras.optimizers.schedules.CosineDecay(0.0, 900, alpha=0.01, warmup_target=1e-3, warmup_steps=100)
    for step in (0, 50, 100, 101, 400, 999, 1000, 1500):
        assert planned.rate(step) == pytest.approx(float(keras_schedule(step)), rel=1e-5, abs=1e-9)


def test_extending_a_run_continues_the_decay_without_a_jump():
    settings = TrainSettings(steps=1000, warmup=100, lr=1e-3)
    planned = PlannedDecay.plan(settings)
    extended = planned.extended(600, 3000)
    rates = [extended.rate(s) for s in range(590, 3001, 10)]
    assert extended.rate(600) == pytest.approx(planned.rate(600), rel=1e-5)
    assert all(later <= earlier * (1 + 1e-5) for earlier, later in zip(rates, rates[1:]))  # never back up
    assert extended.rate(3000) == pytest.approx(1e-5, rel=1e-4)
    assert extended.rate(300) == pytest.approx(planned.rate(300))  # the past is unchanged
    assert planned.extended(600, 1000) is planned


def test_extending_inside_the_warmup_keeps_the_full_peak_ahead():
    planned = PlannedDecay.plan(TrainSettings(steps=1000, warmup=300, lr=1e-3))
    extended = planned.extended(100, 2000)
    assert extended.rate(150) == pytest.approx(planned.rate(150))  # the warm-up goes on
    assert max(extended.rate(s) for s in range(100, 2001, 50)) == pytest.approx(1e-3, rel=1e-4)


def test_a_warm_restart_is_given_only_when_asked_for():
    planned = PlannedDecay.plan(TrainSettings(steps=1000, warmup=100, lr=1e-3))
    assert planned.extended(1000, 3000).rate(1001) == pytest.approx(1e-5, rel=1e-3)  # the floor, where it ended
    restarted = planned.extended(1000, 3000, restart=5e-4)
    assert restarted.rate(1000) == pytest.approx(5e-4) and restarted.rate(3000) == pytest.approx(1e-5, rel=1e-3)


def test_schedule_survives_its_config():
    planned = PlannedDecay.plan(TrainSettings(steps=500, warmup=10)).extended(200, 900)
    again = PlannedDecay(**json.loads(json.dumps(planned.get_config())))
    assert [again.rate(s) for s in (5, 150, 250, 900)] == [planned.rate(s) for s in (5, 150, 250, 900)]


# Runs that began before a setting existed -----------------------------------------------------


def test_a_checkpoint_from_before_the_new_settings_keeps_its_recipe():
    old = {"arch": "default", "steps": 5000, "batch": 8, "patch": 96, "lr": 1e-3, "warmup": 300,
           "loss": "charbonnier", "val_every": 500, "seed": 0, "checkpoint_seconds": 300.0}
    settings = TrainSettings.from_saved(old)
    assert settings.augment == "flip+rot90" and settings.rain_mix == 0.0
    assert settings.motion == "gentle"  # a temporal run from before the near layer keeps its clips
    assert TrainSettings().augment == "flip" and TrainSettings().motion == "parallax"  # new runs get today's defaults
    assert set(LEGACY_SETTINGS) <= {f for f in TrainSettings.__dataclass_fields__}
