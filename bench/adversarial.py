"""Benchmark of genlens.lenses.attacks against torchattacks (PGD) and of the batched L-BFGS attack vs scipy L-BFGS-B.

Run in the project's venv: `python bench/adversarial.py`. Both sides run in this process on the same
model and inputs after a warm-up; the two PGDs are timed in alternating rounds and each time is the
best of `--repeats` rounds. The same attack on both sides (eps, alpha, steps, no random start); they
must agree on accuracy under attack within ACC_MARGIN (and within RS_MARGIN with each side's own
random start); the largest image difference is only reported, since the sign of a gradient entry
that is exactly 0 can differ between processors. attacks.pgd makes no host sync inside its loop.
Prints as its last line `speedup: <torchattacks PGD time / genlens PGD time>` (target >= 1 / 1.05).
"""
from __future__ import annotations

import argparse
import time

import torch
import torchattacks

from genlens.lenses import attacks

from genlens.core import data
from genlens.lenses.randomization import train_randomized
from genlens.core.train import TrainConfig, evaluate

ACC_MARGIN = 0.01  # |accuracy under attack, genlens - torchattacks|, same start: 10 of 1,000 images
RS_MARGIN = 0.03  # the same with each side's own random start (different draws)


def interleaved_best(ours, theirs, repeats: int) -> tuple[float, float, torch.Tensor, torch.Tensor]:
    """Best seconds of `ours` and `theirs` over `repeats` rounds, each round timing both (alternating which
    goes first), after one warm-up call each; and each side's last result."""
    out_o, out_t = ours(), theirs()
    t_o, t_t = [], []
    for r in range(repeats):
        for side in ((0, 1) if r % 2 == 0 else (1, 0)):
            t0 = time.perf_counter()
            if side == 0:
                out_o = ours()
                t_o.append(time.perf_counter() - t0)
            else:
                out_t = theirs()
                t_t.append(time.perf_counter() - t0)
    return min(t_o), min(t_t), out_o, out_t


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--lbfgs-images", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    images = data.load("mnist5k", torch.device("cpu"))
    cfg = TrainConfig(epochs=30, batch_size=64, lr=0.05, weight_decay=1e-5, seed=0)  # the chapter's FC100-100-10
    net, _, _ = train_randomized(images, "true", cfg, model="mlp",
                                 model_kwargs={"hidden": [100, 100], "activation": "sigmoid"})
    x, y = images.x_test[: args.images], images.y_test[: args.images]
    eps, steps = 0.3, 40
    alpha = 2.5 * eps / steps

    # PGD, L-inf, eps 0.3, 40 steps, the same attack on both sides: no random start (the same start, x).
    # Agreement is judged by accuracy under attack, within ACC_MARGIN: the images themselves may differ
    # where a gradient entry is exactly 0 on one processor and not on another (its sign differs).
    ours = lambda: attacks.pgd(net, x, y, eps, steps, alpha=alpha, random_start=False)  # noqa: E731
    peer = torchattacks.PGD(net, eps=eps, alpha=alpha, steps=steps, random_start=False)
    theirs = lambda: peer(x, y)  # noqa: E731
    t_ours, t_theirs, x_ours, x_theirs = interleaved_best(ours, theirs, args.repeats)
    acc_clean = evaluate(net, x, y)[1]
    acc_ours, acc_theirs = evaluate(net, x_ours, y)[1], evaluate(net, x_theirs, y)[1]
    diff = (x_ours - x_theirs).abs().max().item()
    # At eps 0.3 nothing survives either attack (accuracy 0 on both sides): agreement is also checked at
    # eps_check, where accuracy under attack is in between, without and with random start (own draws).
    eps_c = 0.05
    kw_c = dict(eps=eps_c, alpha=2.5 * eps_c / steps, steps=steps)
    acc_ours_c = evaluate(net, attacks.pgd(net, x, y, **kw_c, random_start=False), y)[1]
    acc_theirs_c = evaluate(net, torchattacks.PGD(net, **kw_c, random_start=False)(x, y), y)[1]
    acc_ours_rs = evaluate(net, attacks.pgd(net, x, y, **kw_c, generator=torch.Generator().manual_seed(0)), y)[1]
    torch.manual_seed(0)
    acc_theirs_rs = evaluate(net, torchattacks.PGD(net, **kw_c, random_start=True)(x, y), y)[1]
    print(f"PGD-{steps} L-inf eps={eps} alpha={alpha:.4f}, no random start, {len(x)} images (torch {torch.__version__}, "
          f"torchattacks {torchattacks.__version__}, {torch.get_num_threads()} threads): genlens {t_ours:.3f} s, "
          f"torchattacks {t_theirs:.3f} s, time ratio genlens/torchattacks {t_ours / t_theirs:.3f} (target <= 1.05)")
    print(f"  accuracy: clean {acc_clean:.3f}; under attack genlens {acc_ours:.3f}, torchattacks {acc_theirs:.3f} "
          f"(margin {ACC_MARGIN}); max |image difference| {diff:.1e} (reported, not checked)")
    print(f"  at eps={eps_c}: genlens {acc_ours_c:.3f}, torchattacks {acc_theirs_c:.3f} (margin {ACC_MARGIN}); "
          f"with random start genlens {acc_ours_rs:.3f}, torchattacks {acc_theirs_rs:.3f} (margin {RS_MARGIN})")
    assert max(abs(acc_ours - acc_theirs), abs(acc_ours_c - acc_theirs_c)) <= ACC_MARGIN, \
        "genlens and torchattacks PGD disagree (no random start)"
    assert abs(acc_ours_rs - acc_theirs_rs) <= RS_MARGIN, "genlens and torchattacks PGD disagree (random start)"

    # L-BFGS: the batched projected L-BFGS on the device (the default) vs scipy's L-BFGS-B, one image at a
    # time (the paper's procedure) and as one joint separable problem.
    n = args.lbfgs_images
    xl, yl = images.x_test[:n], images.y_test[:n]
    target = (yl + 1) % images.num_classes
    kw = dict(c_init=0.1, search_steps=3, max_iter=30)
    attacks.lbfgs(net, xl[:2], target[:2], **kw)  # warm-up
    runs = {}
    for label, extra in [("torch, batched", {}), ("scipy, joint", {"solver": "scipy"}),
                         ("scipy, one image at a time", {"solver": "scipy", "batched": False})]:
        t0 = time.perf_counter()
        x_adv = attacks.lbfgs(net, xl, target, **kw, **extra)
        runs[label] = (time.perf_counter() - t0, evaluate(net, x_adv, target)[1], attacks.distortion(xl, x_adv).mean().item())
    t_torch, ok_t, d_t = runs["torch, batched"]
    for label, (t, ok, d) in runs.items():
        print(f"L-BFGS on {n} images, {label}: {t:.2f} s ({t / t_torch:.1f}x the batched time), "
              f"success {ok:.2f}, mean distortion {d:.4f}")
        assert abs(ok - ok_t) <= 0.05 and abs(d - d_t) <= 0.2 * d, f"L-BFGS {label} disagrees with the batched solver"
    print(f"speedup: {t_theirs / t_ours:.2f}")


if __name__ == "__main__":
    main()
