"""genlens.book.seeds against numpy (an independent implementation of the same arithmetic)."""
import numpy as np
import pytest

from genlens.book.seeds import paired_differences, ratios, slopes


def test_paired_differences_match_numpy_seed_by_seed():
    rng = np.random.default_rng(0)
    values = {k: rng.random(5).tolist() for k in ("none", "wd", "crop")}
    out = paired_differences(values, "none")
    assert list(out) == ["wd", "crop"]
    for k in out:
        np.testing.assert_allclose(out[k], np.subtract(values[k], values["none"]))


def test_ratios_and_slopes_match_numpy():
    rng = np.random.default_rng(1)
    a, b = rng.random(4) + 1, rng.random(4) + 1
    np.testing.assert_allclose(ratios(a.tolist(), b.tolist()), a / b)
    x = [0.0, 0.25, 0.5, 1.0]
    y = rng.random((4, 3))
    np.testing.assert_allclose(slopes(x, y.tolist()), [np.polyfit(x, y[:, i], 1)[0] for i in range(3)])


def test_errors_name_what_is_wrong():
    with pytest.raises(ValueError, match="baseline 'none' is not one of"):
        paired_differences({"wd": [1.0]}, "none")
    with pytest.raises(ValueError, match="the same number each"):
        paired_differences({"none": [1.0, 2.0], "wd": [1.0]}, "none")
    with pytest.raises(ValueError, match="denominators must be > 0"):
        ratios([1.0], [0.0])
    with pytest.raises(ValueError, match="x must not be constant"):
        slopes([1.0, 1.0], [[1.0], [2.0]])
