"""Profile settings of the `corrections` chapter, one frozen dataclass per profile."""
from __future__ import annotations

import os
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Settings:
    """Sizes of the corrections chapter: the loan network and its searches, the width sweep, the digits."""

    n_loans: int  # synthetic training applicants (genlens.core.data.loan)
    loan_hidden: tuple[int, ...]  # hidden units per layer of the loan network
    loan_epochs: int
    applicants: int  # rejected applicants corrected
    eps: tuple[float, ...]  # stability radii, in standard deviations of each feature
    max_regions: int  # region budget per loan correction
    widths: tuple[int, ...]  # hidden units per layer in the run-time sweep
    mnist_hidden: tuple[int, ...]
    mnist_epochs: int
    digits: int  # test digits corrected
    pixels: int  # mutable pixels per digit
    mnist_eps: tuple[float, ...]  # stability radii in grey levels / 1
    mnist_regions: int  # region budget per digit correction
    grid: tuple[int, int]  # points of the brute-force grid over (D, R)
    paper_hidden: tuple[int, ...]  # the official mortgage network (config: DEPTH = 5, HIDDEN_SIZE = 200)
    paper_applicants: int  # rejected applicants corrected on it
    polaris_regions: int  # regions in Polaris's union and the search budget at the paper's scale (MAX_NUM_REGIONS)
    polaris_radius: tuple[float, float]  # box radii (D, R) in percentage points (official mortgage rad_map)
    workers: int  # processes for the LP searches; 0: one per CPU core

    @property
    def processes(self) -> int:
        return self.workers or os.cpu_count() or 1

    def limited(self, limit: int) -> Settings:
        """At most `limit` inputs per part and epochs per network, and a coarse grid (smoke tests)."""
        if limit <= 0:
            return self
        return replace(self, applicants=min(self.applicants, limit), digits=min(self.digits, limit),
                       paper_applicants=min(self.paper_applicants, limit),
                       loan_epochs=min(self.loan_epochs, limit), mnist_epochs=min(self.mnist_epochs, limit),
                       grid=(121, 101))

    def smoke(self) -> Settings:
        """Two inputs per part (an interval needs two; six digits, since the search misses some and the figure
        needs one), one epoch per network, a coarse grid, two worker processes (the pool's code path): the
        profile's networks and searches, not its claims."""
        return replace(self.limited(2), loan_epochs=1, mnist_epochs=1, digits=min(self.digits, 6),
                       workers=min(self.processes, 2))


PROFILES = {
    "quick": Settings(n_loans=2000, loan_hidden=(16, 16), loan_epochs=30, applicants=20, eps=(0.0, 0.05, 0.1),
                      max_regions=300, widths=(8, 16, 32), mnist_hidden=(32, 32), mnist_epochs=10, digits=16, pixels=40,
                      mnist_eps=(0.0, 0.02), mnist_regions=30, grid=(241, 201),
                      paper_hidden=(200,) * 5, paper_applicants=20, polaris_regions=100, polaris_radius=(2.5, 0.5),
                      workers=1),
    "full": Settings(n_loans=10000, loan_hidden=(32, 32), loan_epochs=40, applicants=32, eps=(0.0, 0.05, 0.1, 0.2),
                     max_regions=1000, widths=(8, 16, 32, 64), mnist_hidden=(100, 100), mnist_epochs=20, digits=24,
                     pixels=60, mnist_eps=(0.0, 0.02, 0.05), mnist_regions=60, grid=(601, 501),
                     paper_hidden=(200,) * 5, paper_applicants=64, polaris_regions=100, polaris_radius=(2.5, 0.5),
                     workers=0),
    # One H200 machine (16 CPU cores) shared by 4 chapters, about 2 minutes. The networks train on the GPU (small
    # MLPs: a few thousand launch-bound steps, ~20 s); the LP searches run on 8 CPU processes, the Polaris
    # constructions in the notebook's process. The gain over `quick`: the paper's 5 x 200 network corrects twice
    # the applicants, a wider MNIST network, more inputs and radii everywhere. Estimated seconds (per-search times
    # of the quick run on a 2-core CPU): LP searches 32 x 4 radii x 0.3 s (loan) + 32 x 1.2 s (width sweep) +
    # 40 x 0.9 s (5 x 200) + 32 x 2 x 0.4 s (digits) = 140 s of one core, ~25 s on 8; Polaris 32 x 0.3 s + 40 x
    # 0.85 s = 45 s in one process; training ~20 s; grid, sampling, figures and kernel ~25 s: ~115 s
    "gpu": Settings(n_loans=10000, loan_hidden=(16, 16), loan_epochs=40, applicants=32, eps=(0.0, 0.05, 0.1, 0.2),
                    max_regions=300, widths=(8, 16, 32), mnist_hidden=(100, 100), mnist_epochs=20, digits=32, pixels=40,
                    mnist_eps=(0.0, 0.02), mnist_regions=30, grid=(601, 501),
                    paper_hidden=(200,) * 5, paper_applicants=40, polaris_regions=100, polaris_radius=(2.5, 0.5),
                    workers=8),
}
