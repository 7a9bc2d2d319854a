"""Images per second of the core training loop for the `gpu` profile's larger networks.

Run on the GPU machine (bench/gpu/run_book.sh calls it): python bench/gpu/throughput.py imagefolder:/x.zip
Trains the small Inception (Zhang et al.), ResNet-20 and ResNet-56 with `core.train.train` (data resident,
bf16 autocast and channels-last on CUDA, batches from one permutation per epoch) for two epochs at each
batch size the `gpu` profile trains them at, plus 128 and 512, and prints the images per second of the
second epoch (the first includes warm-up). --smoke: one epoch, the code path only. Last line: the
slowest network's throughput at batch 512.
"""
import argparse
import dataclasses

from genlens.book.configs import NetworkConfig
from genlens.core import data
from genlens.core.device import describe, pick_device
from genlens.core.models import build_for
from genlens.core.train import TrainConfig, build_seeded, train

MODELS = ("inception", "resnet20", "resnet56")


def profile_batches(profile: str = "gpu") -> dict[str, set[int]]:
    """model -> batch sizes at which some chapter's `profile` trains it (NetworkConfigs in the settings)."""
    import importlib

    from genlens.book.runner import CHAPTERS

    found: dict[str, set[int]] = {m: set() for m in MODELS}

    def walk(obj: object) -> None:
        if isinstance(obj, NetworkConfig):
            if obj.model in found:
                found[obj.model].add(obj.train.batch_size)
        elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            for f in dataclasses.fields(obj):
                walk(getattr(obj, f.name))
        elif isinstance(obj, dict):
            for v in obj.values():
                walk(v)
        elif isinstance(obj, (list, tuple)):
            for v in obj:
                walk(v)

    for chapter in CHAPTERS:
        try:
            walk(importlib.import_module(f"genlens.book.settings_{chapter}").PROFILES.get(profile))
        except ImportError:
            continue
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", help="a genlens data set name, e.g. imagefolder:/path/cifar10-jpeg-35k.zip")
    parser.add_argument("--smoke", action="store_true", help="one epoch: the code path only")
    args = parser.parse_args()
    dev = pick_device("auto")
    images = data.load(args.dataset, dev)
    n = images.x_train.shape[0]
    print(f"throughput: {data.display_name(args.dataset)}, {n} training images on {describe(dev)}")
    epochs = 1 if args.smoke else 2
    worst = None
    for name, batches in profile_batches().items():
        for batch_size in sorted(batches | {128, 512}):
            net = build_seeded(lambda: build_for(name, images.image_shape, images.num_classes), 0).to(dev)
            history = train(net, images, TrainConfig(epochs=epochs, batch_size=batch_size, lr=0.01), progress=False)
            timed = history.seconds[1:] or history.seconds
            rate = n * len(timed) / sum(timed)
            print(f"throughput: {name} batch {batch_size}: {rate:,.0f} images/s "
                  f"(epochs {[round(s, 2) for s in history.seconds]} s)")
            if batch_size == 512:
                worst = rate if worst is None else min(worst, rate)
    print(f"slowest at batch 512: {worst:,.0f} images/s")


if __name__ == "__main__":
    main()
