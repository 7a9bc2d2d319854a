"""genlens.book.settings_<chapter>: every chapter's profiles are frozen dataclasses, one per profile."""
import dataclasses
import importlib
import pkgutil

import pytest

import genlens.book

MODULES = sorted(m.name for m in pkgutil.iter_modules(genlens.book.__path__) if m.name.startswith("settings_"))


def test_the_moved_chapters_have_settings_modules():
    assert {"settings_adversarial", "settings_corrections", "settings_hfc", "settings_intrinsic",
            "settings_landscape", "settings_protopnet"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_profiles_are_frozen_dataclasses_with_quick_and_full(name):
    profiles = importlib.import_module(f"genlens.book.{name}").PROFILES
    assert {"quick", "full"} <= set(profiles), f"{name}.PROFILES has {sorted(profiles)}"
    for profile, settings in profiles.items():
        assert dataclasses.is_dataclass(settings) and not isinstance(settings, type), (name, profile)
        field = dataclasses.fields(settings)[0].name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(settings, field, getattr(settings, field))


def test_intrinsic_quick_measures_the_rethinking_networks():
    from genlens.book.configs import network
    from genlens.book.settings_intrinsic import PROFILES

    quick = PROFILES["quick"]
    assert quick.fit == network("rethinking-fit", "quick")
    regularized = network("rethinking-regularized", "quick")
    assert (quick.cnn.model, quick.cnn.model_kwargs, quick.cnn.train) == (regularized.model, regularized.model_kwargs,
                                                                           regularized.train)
    assert quick.archs["CNN width 16"].train == regularized.train


def test_landscape_smoke_keeps_the_recipe_but_one_epoch():
    from genlens.book.settings_landscape import PROFILES

    smoke = PROFILES["quick"].smoke()
    assert smoke.res_cfg == dataclasses.replace(PROFILES["quick"].res_cfg, epochs=1) and smoke.grid == 5
