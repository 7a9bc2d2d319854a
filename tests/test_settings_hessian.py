"""genlens.book.settings_hessian: profiles, seeds, learning rates."""
import pytest

from genlens.book import settings_hessian as sh


def test_profiles_resolve_and_keep_the_tested_radius_among_the_attacks():
    for name in sh.PROFILES:
        s = sh.resolve(name)
        assert s.eps_test in s.eps_fgsm and list(s.batch_sizes) == sorted(s.batch_sizes) and s.replicates >= 2
    assert sh.resolve("quick", dataset="mnist").dataset == "mnist"
    with pytest.raises(ValueError, match="profile must be"):
        sh.resolve("huge")


def test_replicate_seeds_are_disjoint_between_chapter_seeds():
    assert set(sh.replicate_seeds(0, 3)).isdisjoint(sh.replicate_seeds(1, 3))
    with pytest.raises(ValueError, match="replicates"):
        sh.replicate_seeds(0, 0)


def test_learning_rate_scaling():
    s = sh.PROFILES["quick"]
    assert sh.learning_rate(s, 2048, 0.0) == s.lr and sh.learning_rate(s, 2048, 1.0) == pytest.approx(s.lr * 64)
