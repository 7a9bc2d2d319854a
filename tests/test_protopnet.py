"""genlens.lenses.protopnet against direct per-patch computations, hand-built losses, and the push property."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from genlens.core import train as core_train
from genlens.core.cache import Cache
from genlens.core.data import ImageData
from genlens.core.train import TrainConfig, train
from genlens.lenses import protopnet as pp

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
    with pytest.raises(ValueError, match="latent must have 4 dimensions"):
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


SMALL = pp.ProtoConfig(prototypes_per_class=2, prototype_dim=4, epochs=3, warm_epochs=1, push_epochs=(1, 2),
                      last_layer_epochs=2, batch_size=8)


def _toy_data():
    x, y = _data(24)
    return ImageData("toy", x, y, x[:9], y[:9], ("a", "b", "c"))


def test_schedule_is_the_repositorys():
    phases = pp.schedule(pp.ProtoConfig(epochs=12, warm_epochs=2, push_epochs=(5, 11), last_layer_epochs=3, lr_step=4))
    assert [(p.name, p.config.epochs) for p in phases] == [("warm", 2), ("joint", 4), ("last", 3), ("joint", 6),
                                                           ("last", 3)]
    assert [p.after is not None for p in phases] == [False, True, False, True, False]
    joint = phases[1].config
    # StepLR(4, 0.1) stepped before each joint epoch: the lr drops at joint epochs 3 and 7 (0-based)
    assert [joint.lr_factor(j) for j in range(10)] == pytest.approx([1, 1, 1, 0.1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01])
    assert all(p.config.optimizer == "adam" for p in phases)


def test_training_is_deterministic_and_pushes_at_the_scheduled_epochs():
    data = _toy_data()
    runs = []
    for _ in range(2):
        model = _tiny()
        w0 = model.last_layer.weight.detach().clone()
        feats0 = [p.detach().clone() for p in model.features.parameters()]
        hist = train(model, data, TrainConfig(seed=0), phases=pp.schedule(SMALL), progress=False)
        runs.append((model.state_dict(), hist))
    assert hist.phase == ["warm", "joint", "last", "last", "joint", "last", "last"]
    pushes = pp.pushes(hist)
    assert [p.epoch for p in pushes] == [1, 4]
    assert pushes[0].test_acc_before == hist.test_acc[1] and pushes[0].test_acc_after_last_layer == hist.test_acc[3]
    assert all(torch.isfinite(torch.tensor(hist.extra["cluster"][i])) == (ph != "last") for i, ph in enumerate(hist.phase))
    assert not torch.equal(model.last_layer.weight, w0)  # trained only in the last-layer phase
    assert not torch.equal(next(model.features.parameters()), feats0[0])
    assert all(p.requires_grad for p in model.parameters())  # the caller's flags come back
    assert all(torch.equal(a, b) for a, b in zip(runs[0][0].values(), runs[1][0].values()))
    assert runs[0][1].test_acc == runs[1][1].test_acc


def test_each_phase_trains_only_its_parameters():
    model = _tiny()
    seen = []  # the state after each epoch: phases warm, joint, last, last, joint, last, last
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train(model, _toy_data(), TrainConfig(seed=0), phases=pp.schedule(SMALL), progress=False,
          callback=lambda epoch, m, h: seen.append({k: v.clone() for k, v in m.state_dict().items()}))
    warm, joint, last, joint2 = seen[0], seen[1], seen[2], seen[4]

    def moved(a, b, name):
        return not torch.equal(a[name], b[name])

    # warm-up: the backbone and the last layer are frozen; add-on layers and prototypes move
    assert not moved(warm, before, "features.0.weight") and not moved(warm, before, "last_layer.weight")
    assert moved(warm, before, "prototypes") and moved(warm, before, "add_on.0.weight")
    # joint: the backbone moves, the last layer does not
    assert moved(joint, warm, "features.0.weight") and not moved(joint, warm, "last_layer.weight")
    # last-layer passes (after the push): only the last layer moves
    assert moved(last, joint, "last_layer.weight")
    assert not moved(last, joint, "features.0.weight") and not moved(last, joint, "add_on.2.weight")
    assert not moved(joint2, seen[3], "last_layer.weight") and moved(joint2, seen[3], "features.0.weight")


def test_last_layer_loss_is_cross_entropy_plus_l1_of_wrong_class_weights():
    layer = torch.nn.Linear(6, 3, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.arange(18.0).reshape(3, 6) / 10 - 0.7)
    s, y = torch.rand(5, 6, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 2, 1, 0])
    total, logits, parts = pp._last_layer_objective(layer, s, y, config=pp.ProtoConfig())
    wrong = [(k, p) for k in range(3) for p in range(6) if p // 2 != k]  # 2 prototypes per class
    l1 = sum(abs(layer.weight[k, p].item()) for k, p in wrong)
    assert total.item() == pytest.approx(F.cross_entropy(s @ layer.weight.T, y).item() + 1e-4 * l1, rel=1e-6)
    assert parts["cross_entropy"].item() == pytest.approx(F.cross_entropy(logits, y).item())


def test_fit_is_cached(tmp_path, monkeypatch):
    data = _toy_data()
    cfg = pp.ProtoConfig(prototypes_per_class=2, prototype_dim=4, epochs=2, warm_epochs=1, push_epochs=(1,),
                         last_layer_epochs=1, batch_size=8)
    model, hist, pushes = pp.fit(_tiny, data, cfg, spec={"toy": 1}, cache=Cache(tmp_path))
    assert not any(p.requires_grad for p in model.parameters()) and not model.training
    assert len(pushes) == 1 and pushes[0].image_index.shape == (6,)

    def no_training(*args, **kwargs):
        raise AssertionError("trained again instead of loading the cache")

    monkeypatch.setattr(core_train, "train", no_training)
    again, hist2, pushes2 = pp.fit(_tiny, data, cfg, spec={"toy": 1}, cache=Cache(tmp_path))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    assert hist2.test_acc == hist.test_acc and torch.equal(pushes2[0].patch, pushes[0].patch)


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
    with pytest.raises(ValueError, match="x must have 4 dimensions"):
        pp.explain(model, x[0])


def test_nearest_prototypes_of_an_image_against_a_dense_computation():
    model = _tiny()
    x, _ = _data(12)
    idx, dist = pp.nearest_prototypes(model, x, k=3, batch_size=5)
    direct = ((model.latent(x)[:, None] - model.prototypes[None]) ** 2).sum(2).flatten(2).amin(2)  # (N, P), no expansion
    assert idx.shape == dist.shape == (12, 3)
    torch.testing.assert_close(dist, direct.sort(1).values[:, :3], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(direct.gather(1, idx), dist, rtol=1e-4, atol=1e-5)
    # the image's side and the prototype's side read the same (N, P) distances
    _, by_prototype = pp.nearest_patches(model, x, k=12)
    torch.testing.assert_close(by_prototype.min(1).values.sort().values, direct.amin(0).sort().values, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="k must be"):
        pp.nearest_prototypes(model, x, k=model.num_prototypes + 1)


def test_last_layer_gradient_is_autograd_of_the_mean_cross_entropy():
    model = _tiny()
    x, y = _data(10)
    g = pp.last_layer_gradient(model, x, y, batch_size=4)
    with torch.no_grad():
        s = pp.log_similarity(model.forward_all(x)[1], model.epsilon)
    W = model.last_layer.weight.detach().clone().requires_grad_(True)
    F.cross_entropy(s @ W.T, y).backward()
    torch.testing.assert_close(g, W.grad, rtol=1e-4, atol=1e-6)
    assert model.last_layer.weight.grad is None  # leaves .grad as it found it
    with pytest.raises(ValueError):
        pp.last_layer_gradient(model, x, y[:5])


def test_wrong_class_abs_is_the_mean_over_the_wrong_class_mask():
    model = _tiny(m=2, K=3)
    with torch.no_grad():
        model.last_layer.weight.copy_(torch.arange(18.0).reshape(3, 6) / 10 - 0.7)
    mask = pp.wrong_class_mask(model.prototype_class, 3).bool()
    expected = model.last_layer.weight[mask].abs().mean()
    assert pp._wrong_class_abs(model.last_layer.weight).item() == pytest.approx(expected.item())
    parts = pp._last_layer_objective(model.last_layer, torch.rand(4, 6), torch.tensor([0, 1, 2, 0]),
                                     config=pp.ProtoConfig())[2]
    assert parts["wrong_class_abs"].item() == pytest.approx(expected.item())


def test_activation_box():
    heat = torch.zeros(10, 12)
    heat[2:5, 7:10] = 1.0
    assert pp.activation_box(heat, 95) == (2, 4, 7, 9)
    with pytest.raises(ValueError, match="percentile"):
        pp.activation_box(heat, 120)
    maps = torch.rand(7, 9, 11, generator=torch.Generator().manual_seed(0))
    boxes = pp.activation_boxes(maps, 80)
    for m, box in zip(maps, boxes.tolist()):  # oracle: numpy on each map
        rows, cols = np.nonzero(m.numpy() >= np.quantile(m.numpy(), 0.8))
        assert box == [rows.min(), rows.max(), cols.min(), cols.max()]


def test_source_patches_after_a_push():
    model = _tiny()
    x, y = _data(30)
    push = pp.push_prototypes(model, x, y, batch_size=7)
    src = pp.source_patches(model, x, push)
    P = model.num_prototypes
    assert torch.equal(src.images, x[push.image_index])
    assert src.distance.abs().max().item() < 1e-6  # every prototype is its recorded source patch
    e = pp.explain(model, x[push.image_index])  # the P x P computation the lens avoids
    own = e.similarity_maps[torch.arange(P), torch.arange(P)]  # (P, h, w)
    torch.testing.assert_close(src.similarity, own[torch.arange(P), push.patch[:, 0], push.patch[:, 1]], rtol=1e-3, atol=1e-2)
    heat = torch.stack([e.upsampled(j, j, (8, 8)) for j in range(P)])
    torch.testing.assert_close(src.heat, heat, rtol=1e-3, atol=1e-2)
    assert src.boxes.tolist() == [list(pp.activation_box(h)) for h in src.heat]


def test_chapter_settings_resolve_the_parameters():
    from genlens.book.settings_protopnet import PROFILES, resolve

    quick = resolve("quick", seed=3)
    assert quick.dataset == "mnist5k" and quick.config.seed == 3 and quick.config.push_epochs == (5, 9)
    short = resolve("quick", epochs=4, backbone="resnet18")
    assert short.config.epochs == 4 and short.config.push_epochs == (3,) and short.backbone == "resnet18"
    proxy = resolve("full", dataset="imagefolder:/x/cifar10-jpeg")
    assert proxy.dataset == "imagefolder:/x/cifar10-jpeg" and proxy.backbone == "resnet18" and proxy.config.augment
    assert resolve("full").config == pp.ProtoConfig(epochs=31, warm_epochs=5, push_epochs=(10, 20, 30),
                                                    last_layer_epochs=600)  # the repository's 45,000 steps
    assert quick.n_seeds >= 3 and PROFILES["full"].n_seeds >= 3
    assert PROFILES["full"].pretrained and not PROFILES["quick"].pretrained
    with pytest.raises(ValueError, match="profile must be"):
        resolve("proxy")
