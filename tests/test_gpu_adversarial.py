"""The gpu profile of the adversarial chapter: mnist5k with the full profile's recipe and attack; its smoke settings."""
from dataclasses import replace

from genlens.book.settings_adversarial import PROFILES


def test_gpu_stays_on_mnist5k_with_more_attacked_images_than_quick():
    gpu, quick, full = PROFILES["gpu"], PROFILES["quick"], PROFILES["full"]
    assert gpu.dataset == "mnist5k"  # the GPU machine's only MNIST
    assert gpu.n_attack > quick.n_attack and gpu.n_attack <= 1000  # mnist5k has 1,000 test images
    assert gpu.train == full.train and gpu.lbfgs == full.lbfgs and gpu.pgd_steps == full.pgd_steps
    assert gpu.disjoint_attack_all and not quick.disjoint_attack_all


def test_the_main_training_length_is_one_of_the_disjoint_lengths():
    for name, s in {**PROFILES, **{f"{n} smoke": p.smoke() for n, p in PROFILES.items()}}.items():
        assert s.train.epochs in s.disjoint_epochs, name  # the chapter takes the pair trained as long as the others
        assert list(s.disjoint_epochs) == sorted(s.disjoint_epochs), name


def test_smoke_shrinks_the_attack_and_training_and_keeps_the_recipe():
    for name, s in PROFILES.items():
        small = s.smoke()
        assert small.train == replace(s.train, epochs=min(s.train.epochs, 20)) and small.dataset == s.dataset
        assert small.n_attack <= 50 and small.pgd_steps <= 2 and max(small.disjoint_epochs) <= 20
        assert small.lbfgs["c_init"] == s.lbfgs["c_init"]
        assert small.lbfgs["search_steps"] * small.lbfgs["max_iter"] < s.lbfgs["search_steps"] * s.lbfgs["max_iter"]
        assert small.disjoint_attack_all == s.disjoint_attack_all
