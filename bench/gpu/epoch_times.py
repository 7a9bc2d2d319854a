"""Seconds per training epoch of the `full` profiles' networks, to budget a GPU run.

Run on the GPU machine: python bench/gpu/epoch_times.py imagefolder:/path/cifar10.zip
Trains each network for two epochs (the first includes warm-up) at batch 128 and 512 with the data
resident on the device, and prints the seconds of each epoch. Last line: the slowest second epoch.
"""
import sys

from genlens.core import data
from genlens.core.device import pick_device
from genlens.core.models import build_for
from genlens.core.train import TrainConfig, build_seeded, train

NETWORKS = [("inception", {}), ("alexnet", {}), ("mlp", {"hidden": [512]}), ("mlp", {"hidden": [512] * 3}),
            ("resnet20", {}), ("resnet56", {}), ("vgg", {}), ("cnn", {"width": 64})]


def main(dataset: str = "cifar10") -> None:
    dev = pick_device("auto")
    images = data.load(dataset, dev)
    print(f"{data.display_name(dataset)}: {tuple(images.x_train.shape)} on {dev}")
    slowest = 0.0
    for name, kwargs in NETWORKS:
        for batch_size in (128, 512):
            net = build_seeded(lambda: build_for(name, images.image_shape, images.num_classes, **kwargs), 0).to(dev)
            history = train(net, images, TrainConfig(epochs=2, batch_size=batch_size, lr=0.01), progress=False)
            slowest = max(slowest, history.seconds[-1])
            print(f"{name} {kwargs or ''} batch {batch_size}: epochs {[round(s, 2) for s in history.seconds]} s")
    print(f"slowest epoch: {slowest:.2f} s")


if __name__ == "__main__":
    main(*sys.argv[1:2])
