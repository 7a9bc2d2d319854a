"""genlens.lenses.protopnet against direct per-patch computations, hand-built losses, and the push property."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from genlens.lenses import protopnet as pp
from genlens.core.data import DatasetNotFound, ImageData

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _tiny(seed=0, m=2, K=3, D=4):
    """A ProtoPNet on a 2-layer conv backbone for 1x8x8 images (latent 4x4)."""
    torch.manual_seed(seed)
    feats = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
    return pp.ProtoPNet(feats, 6, K, prototypes_per_class=m, prototype_dim=D,
                        generator=torch.Generator().manual_seed(seed))


def _data(n=30, K=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 8, 8, generator=g)
    y = torch.arange(n) % K
    return x, y


def test_distances_match_a_direct_per_patch_loop():
    g = torch.Generator().manual_seed(0)
    z = torch.rand(3, 5, 4, 6, generator=g, dtype=torch.float64)
    p = torch.rand(7, 5, 1, 1, generator=g, dtype=torch.float64)
    d = pp.l2_distances(z, p)
    assert d.shape == (3, 7, 4, 6)
    for n in range(3):
        for j in range(7):
            for u in range(4):
                for v in range(6):
                    assert math.isclose(d[n, j, u, v].item(), ((z[n, :, u, v] - p[j, :, 0, 0]) ** 2).sum().item(),
                                        rel_tol=1e-10, abs_tol=1e-12)
    assert torch.equal(pp.l2_distances(z, p[:, :, 0, 0]), d)  # (P, D) accepted too
    with pytest.raises(ValueError, match="dimension 3"):
        pp.l2_distances(z, p[:, :3])
    with pytest.raises(ValueError, match="latent must be"):
        pp.l2_distances(z[0], p)


def test_similarity_and_forward_pooling():
    d = torch.tensor([0.0, 1.0, 10.0])
    assert torch.allclose(pp.log_similarity(d, 1e-4), torch.log(torch.tensor([1 / 1e-4, 2 / (1 + 1e-4), 11 / (10 + 1e-4)])))
    model = _tiny()
    x, _ = _data(5)
    logits, min_d, d = model.forward_all(x)
    assert d.shape == (5, 6, 4, 4) and min_d.shape == (5, 6)
    assert torch.equal(min_d, d.amin((2, 3)))
    assert torch.allclose(logits, pp.log_similarity(min_d) @ model.last_layer.weight.T, atol=1e-6)


def test_last_layer_initialisation():
    model = _tiny(m=2, K=3)
    W = model.last_layer.weight
    expected = torch.tensor([[1, 1, -0.5, -0.5, -0.5, -0.5], [-0.5, -0.5, 1, 1, -0.5, -0.5],
                             [-0.5, -0.5, -0.5, -0.5, 1, 1]])
    assert torch.equal(W, expected)
    assert model.last_layer.bias is None
    assert torch.equal(model.prototype_class, torch.tensor([0, 0, 1, 1, 2, 2]))


def test_loss_on_a_hand_built_case():
    # 2 images, 2 classes, 2 prototypes per class (P = 4), all numbers chosen by hand
    min_d = torch.tensor([[1.0, 4.0, 2.0, 9.0], [3.0, 0.5, 7.0, 6.0]])
    y = torch.tensor([0, 1])
    cls = torch.tensor([0, 0, 1, 1])
    W = torch.tensor([[1.0, 1.0, -0.5, -0.2], [0.3, -0.5, 1.0, 1.0]])
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    cfg = pp.ProtoConfig()
    t = pp.protopnet_loss(logits, min_d, y, cls, W, cfg)
    cluster = (1.0 + 6.0) / 2  # image 0: own protos {1, 4} -> 1; image 1: own {7, 6} -> 6
    separation = (2.0 + 0.5) / 2  # image 0: others {2, 9} -> 2; image 1: others {3, 0.5} -> 0.5
    l1 = 0.5 + 0.2 + 0.3 + 0.5  # wrong-class entries only
    ce = -(math.log(math.exp(2) / (math.exp(2) + 1)) + math.log(math.e / (1 + math.e))) / 2
    assert math.isclose(t.cluster.item(), cluster) and math.isclose(t.separation.item(), separation)
    assert math.isclose(t.l1.item(), l1, rel_tol=1e-6) and math.isclose(t.cross_entropy.item(), ce, rel_tol=1e-6)
    assert math.isclose(t.total.item(), ce + 0.8 * cluster - 0.08 * separation + 1e-4 * l1, rel_tol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
def test_push_projects_every_prototype_onto_a_latent_patch_of_its_class(device):
    model = _tiny().to(device)
    x, y = (t.to(device) for t in _data(30))
    # an independent oracle: the nearest own-class patch by brute force before pushing
    with torch.no_grad():
        z = model.latent(x)  # (N, D, 4, 4)
        old = model.prototypes.detach().clone()
    expect = []
    for j, c in enumerate(model.prototype_class.tolist()):
        best = min(((((z[n, :, u, v] - old[j, :, 0, 0]) ** 2).sum().item(), n, u, v)
                    for n in range(len(x)) if y[n] == c for u in range(4) for v in range(4)))
        expect.append(best)
    res = pp.push_prototypes(model, x, y, batch_size=7)
    assert res.image_index.device.type == torch.device(device).type
    for j, (dist, n, u, v) in enumerate(expect):
        assert (res.image_index[j].item(), *res.patch[j].tolist()) == (n, u, v)
        assert math.isclose(res.distance[j].item(), dist, rel_tol=1e-4, abs_tol=1e-6)
        assert y[n].item() == model.prototype_class[j].item()
        assert torch.allclose(model.prototypes[j, :, 0, 0], z[n, :, u, v])
    # after the push each prototype's own similarity map peaks (distance 0) at its source patch
    d = model.distances(x[res.image_index])
    own = d[torch.arange(6), torch.arange(6)]  # (P, h, w)
    assert own.flatten(1).min(1).values.max().item() < 1e-5
    with pytest.raises(ValueError, match="no image of class"):
        pp.push_prototypes(model, x[y != 2], y[y != 2])


def test_training_is_deterministic_and_pushes_at_the_scheduled_epochs():
    x, y = _data(24)
    data = ImageData("toy", x, y, x[:9], y[:9], ("a", "b", "c"))
    cfg = pp.ProtoConfig(prototypes_per_class=2, prototype_dim=4, epochs=3, warm_epochs=1, push_epochs=(1, 2),
                         last_layer_epochs=2, batch_size=8)
    runs = []
    for _ in range(2):
        model = _tiny()
        w0 = model.last_layer.weight.detach().clone()
        feats0 = [p.detach().clone() for p in model.features.parameters()]
        hist, pushes = pp.train_protopnet(model, data, cfg)
        runs.append((model.state_dict(), hist))
    assert hist["phase"] == ["warm", "joint", "push", "last", "last", "joint", "push", "last", "last"]
    assert len(pushes) == 2
    assert not torch.equal(model.last_layer.weight, w0)  # trained only in the last-layer phase
    assert not torch.equal(next(model.features.parameters()), feats0[0])
    assert all(torch.equal(a, b) for a, b in zip(runs[0][0].values(), runs[1][0].values()))
    assert runs[0][1]["test_acc"] == runs[1][1]["test_acc"]


def test_warm_phase_leaves_the_backbone_and_last_layer_alone():
    x, y = _data(24)
    data = ImageData("toy", x, y, x[:9], y[:9], ("a", "b", "c"))
    model = _tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pp.train_protopnet(model, data, pp.ProtoConfig(prototypes_per_class=2, prototype_dim=4, epochs=1, warm_epochs=1,
                                                   push_epochs=(), batch_size=8))
    after = model.state_dict()
    assert torch.equal(after["features.0.weight"], before["features.0.weight"])
    assert torch.equal(after["last_layer.weight"], before["last_layer.weight"])
    assert not torch.equal(after["prototypes"], before["prototypes"])
    assert not torch.equal(after["add_on.0.weight"], before["add_on.0.weight"])


def test_explanation_points_add_up_to_logits_and_nearest_patches():
    model = _tiny()
    x, y = _data(12)
    e = pp.explain(model, x)
    assert torch.allclose(e.points.sum(-1), e.logits, atol=1e-5)
    n, p = 3, 4
    assert e.similarity_maps[n, p][tuple(e.patch[n, p])] == e.similarity_maps[n, p].max()
    assert e.upsampled(n, p, (8, 8)).shape == (8, 8)
    top = e.top(n, 1, 2)
    assert e.points[n, 1, top[0]] >= e.points[n, 1, top[1]] >= e.points[n, 1].sort().values[-2]
    idx, dist = pp.nearest_patches(model, x, k=3, batch_size=5)
    brute = model.distances(x).amin((2, 3)).T  # (P, N)
    assert torch.allclose(dist, brute.sort(1).values[:, :3])
    assert torch.allclose(brute.gather(1, idx), dist)
    with pytest.raises(ValueError, match="k must be"):
        pp.nearest_patches(model, x, k=0)
    with pytest.raises(TypeError, match="x must be"):
        pp.explain(model, x[0])


def test_activation_box():
    heat = torch.zeros(10, 12)
    heat[2:5, 7:10] = 1.0
    assert pp.activation_box(heat, 95) == (2, 4, 7, 9)
    with pytest.raises(ValueError, match="percentile"):
        pp.activation_box(heat, 120)


def test_backbones_offline():
    feats, c = pp.backbone("cnn", 1, width=8)
    assert feats(torch.zeros(2, 1, 28, 28)).shape == (2, c, 7, 7)
    feats, c = pp.backbone("resnet18", 3, width=8)
    assert feats(torch.zeros(2, 3, 32, 32)).shape == (2, c, 4, 4)
    with pytest.raises(ValueError, match="backbone must be one of"):
        pp.backbone("vit")


def test_pretrained_weights_are_read_from_the_hub_cache_or_named(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(FileNotFoundError, match="resnet34-b627a593.pth"):
        pp.backbone("resnet34", pretrained=True)
    import torchvision

    net = torchvision.models.resnet34(weights=None)
    (tmp_path / "checkpoints").mkdir()
    torch.save(net.state_dict(), tmp_path / "checkpoints" / "resnet34-b627a593.pth")
    feats, c = pp.backbone("resnet34", pretrained=True)
    assert c == 512 and torch.equal(feats[0].weight, net.conv1.weight)


def _write_cub(root, n_per_class=(3, 2)):
    from PIL import Image

    (root / "images").mkdir(parents=True)
    lines = {k: [] for k in ("images", "split", "boxes", "labels")}
    rng = np.random.default_rng(0)
    i = 0
    classes = ["001.Black_footed_Albatross", "002.Laysan_Albatross"]
    for c, count in enumerate(n_per_class):
        (root / "images" / classes[c]).mkdir()
        for k in range(count):
            i += 1
            name = f"{classes[c]}/img_{k}.jpg"
            img = np.zeros((40, 50, 3), np.uint8)
            img[10:30, 5:25] = 255 if c == 0 else 128  # the bird fills its box
            Image.fromarray(img).save(root / "images" / name)
            lines["images"].append(f"{i} {name}")
            lines["split"].append(f"{i} {1 if k < count - 1 else 0}")
            lines["boxes"].append(f"{i} 5.0 10.0 20.0 20.0")
            lines["labels"].append(f"{i} {c + 1}")
    (root / "images.txt").write_text("\n".join(lines["images"]) + "\n")
    (root / "train_test_split.txt").write_text("\n".join(lines["split"]) + "\n")
    (root / "bounding_boxes.txt").write_text("\n".join(lines["boxes"]) + "\n")
    (root / "image_class_labels.txt").write_text("\n".join(lines["labels"]) + "\n")
    (root / "classes.txt").write_text("".join(f"{k + 1} {c}\n" for k, c in enumerate(classes)))


def test_cub200_loader_crops_to_boxes(tmp_path, monkeypatch):
    monkeypatch.setenv("GENLENS_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "CUB_200_2011"
    with pytest.raises(DatasetNotFound, match="missing images.txt.*bounding_boxes.txt"):
        pp.load_cub200(root)
    _write_cub(root)
    for _ in range(2):  # decoded, then from the cache
        d = pp.load_data(f"cub200:{root}")
        assert d.x_train.shape == (3, 3, 224, 224) and d.x_test.shape == (2, 3, 224, 224)
        assert d.y_train.tolist() == [0, 0, 1] and d.y_test.tolist() == [0, 1]
        assert d.classes == ("001.Black_footed_Albatross", "002.Laysan_Albatross")
        # cropped to the box, the image is uniform: white for class 0, grey for class 1 (JPEG tolerance)
        assert abs(d.x_train[0].mean().item() - 1.0) < 0.03 and abs(d.x_test[1].mean().item() - 128 / 255) < 0.03
    assert any((tmp_path / "cache" / "datasets").glob("cub200-*.pt"))
