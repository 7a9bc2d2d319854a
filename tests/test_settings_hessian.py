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


def test_gpu_profile_runs_the_papers_setting_on_a_subset():
    s = sh.resolve("gpu")
    assert s.dataset == "cifar10" and s.model == ("alexnet", {}) and s.n_train and s.n_test and s.replicates >= 3
    assert sh.resolve("gpu", dataset="imagefolder:/x.zip").dataset == "imagefolder:/x.zip"
    assert all(sh.PROFILES[p].n_train is None and sh.PROFILES[p].n_test is None for p in ("quick", "full"))


def test_smoke_shrinks_every_setting_but_keeps_the_network_and_the_override():
    for name, s in sh.PROFILES.items():
        small = sh.resolve(name, dataset="imagefolder:/x.zip", smoke=True)
        assert small.model == s.model and small.batch_sizes == s.batch_sizes and small.dataset == "imagefolder:/x.zip"
        assert small.replicates == 2 and small.epochs == 1 and small.max_epochs <= 2 and small.n_train is None
        assert small.target_loss > 2.31  # above chance-level cross-entropy ln 10: the first epoch reaches it
        assert small.hessian_samples < s.hessian_samples and small.input_images < s.input_images
        assert small.trace_probes >= 2 and small.slq_runs >= 2 and small.eps_test in small.eps_fgsm
