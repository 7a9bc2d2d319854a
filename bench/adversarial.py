"""Benchmark of genlens.lenses.attacks against torchattacks (PGD) and of the batched L-BFGS attack vs scipy L-BFGS-B.

Run in the project's venv: `python bench/adversarial.py`. Both sides run in this process on the same
model and inputs after a warm-up; each time is the best of `--repeats` runs. Checks that the two
sides agree, and prints as its last line `speedup: <torchattacks PGD time / genlens PGD time>`.
"""
from __future__ import annotations

import argparse
import time

import torch
import torchattacks

from genlens.lenses import attacks

from genlens.core import data
from genlens.core.device import best_time
from genlens.lenses.randomization import train_randomized
from genlens.core.train import TrainConfig, evaluate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--lbfgs-images", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    images = data.load("mnist5k", torch.device("cpu"))
    cfg = TrainConfig(epochs=30, batch_size=64, lr=0.05, weight_decay=1e-5, seed=0)  # the chapter's FC100-100-10
    net, _, _ = train_randomized(images, "true", cfg, model="mlp",
                                 model_kwargs={"hidden": [100, 100], "activation": "sigmoid"})
    x, y = images.x_test[: args.images], images.y_test[: args.images]
    eps, steps = 0.3, 40
    alpha = 2.5 * eps / steps

    # PGD, L-inf, eps 0.3, 40 steps. Without random start both must return the same images.
    same = (attacks.pgd(net, x, y, eps, steps, alpha=alpha, random_start=False)
            - torchattacks.PGD(net, eps=eps, alpha=alpha, steps=steps, random_start=False)(x, y)).abs().max().item()
    gen = torch.Generator().manual_seed(0)
    ours = lambda: attacks.pgd(net, x, y, eps, steps, alpha=alpha, generator=gen)  # noqa: E731
    peer = torchattacks.PGD(net, eps=eps, alpha=alpha, steps=steps, random_start=True)
    theirs = lambda: peer(x, y)  # noqa: E731
    acc_ours, acc_theirs = evaluate(net, ours(), y)[1], evaluate(net, theirs(), y)[1]
    t_ours, t_theirs = best_time(ours, repeats=args.repeats)[0], best_time(theirs, repeats=args.repeats)[0]
    print(f"PGD eps={eps} steps={steps} on {len(x)} images: genlens {t_ours:.3f} s, torchattacks {t_theirs:.3f} s, "
          f"ratio genlens/torchattacks {t_ours / t_theirs:.2f}")
    print(f"  agreement: max |difference| without random start {same:.1e}; "
          f"accuracy under attack genlens {acc_ours:.3f}, torchattacks {acc_theirs:.3f}")
    assert same < 1e-5 and abs(acc_ours - acc_theirs) <= 0.02, "genlens and torchattacks PGD disagree"

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
