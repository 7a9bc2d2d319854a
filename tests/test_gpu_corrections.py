"""The corrections chapter's gpu profile and smoke settings (genlens.book.settings_corrections)."""
import pytest

from genlens.book.settings_corrections import PROFILES


def test_gpu_profile_scales_quick_up_on_the_paper_network_with_worker_processes():
    quick, gpu = PROFILES["quick"], PROFILES["gpu"]
    assert gpu.paper_hidden == (200,) * 5 and gpu.polaris_regions == 100  # the official mortgage network and budget
    assert gpu.paper_applicants > quick.paper_applicants and gpu.applicants > quick.applicants
    assert gpu.digits > quick.digits and set(quick.eps) < set(gpu.eps)
    assert gpu.workers > 1 and gpu.processes == gpu.workers


@pytest.mark.parametrize("profile", ["quick", "gpu", "full"])
def test_smoke_shrinks_inputs_and_epochs_and_keeps_the_networks(profile):
    s = PROFILES[profile]
    small = s.smoke()
    assert (small.loan_hidden, small.paper_hidden, small.mnist_hidden, small.widths) == (
        s.loan_hidden, s.paper_hidden, s.mnist_hidden, s.widths)
    assert (small.applicants, small.digits, small.paper_applicants) == (2, 6, 2)
    assert small.loan_epochs == small.mnist_epochs == 1 and small.grid == (121, 101)
    assert small.processes == min(s.processes, 2)
