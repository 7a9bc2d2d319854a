"""Tests for genlens.core.models: shapes, paper parameter counts, skip connections, registry, determinism."""
import pytest
import torch

from genlens.core.models import (
    MODELS, MLP, CifarResNet, Normalize, ResNet18, SmallAlexNet, SmallCNN, SmallInception, SmallVGG,
    backbone, build, count_parameters, plain_classifier, resnet20, with_normalization,
)

# (registry name, kwargs, input shape) -- every model on the input size it is meant for.
CASES = [
    ("mlp", {}, (1, 28, 28)),
    ("mlp", dict(in_channels=3, image_size=32, hidden=(64, 32), batchnorm=True, dropout=0.1), (3, 32, 32)),
    ("cnn", {}, (1, 28, 28)),
    ("cnn", dict(in_channels=3, width=8, batchnorm=False, dropout=0.5, image_size=32), (3, 32, 32)),
    ("resnet20", {}, (3, 32, 32)),
    ("resnet20", dict(shortcut=False, width=2), (3, 32, 32)),
    ("resnet", dict(depth=8, in_channels=1), (1, 28, 28)),
    ("resnet18", dict(width=8), (3, 32, 32)),
    ("vgg", {}, (3, 32, 32)),
    ("vgg", dict(in_channels=1, image_size=28, cfg=(16, "M", 32, "M"), batchnorm=False), (1, 28, 28)),
    ("inception", {}, (3, 28, 28)),
    ("inception", dict(batchnorm=False, in_channels=1), (1, 28, 28)),
    ("alexnet", {}, (3, 28, 28)),
    ("alexnet", dict(in_channels=1, image_size=32), (1, 32, 32)),
    ("mnist_cnn", {}, (1, 28, 28)),
    ("mnist_cnn", dict(in_channels=3, image_size=32), (3, 32, 32)),
]


@pytest.mark.parametrize("name,kw,shape", CASES)
@pytest.mark.parametrize("num_classes", [10, 3])
def test_forward_shape(name, kw, shape, num_classes):
    model = build(name, num_classes=num_classes, **kw)
    out = model(torch.rand(2, *shape))
    assert out.shape == (2, num_classes) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_deep_resnets_forward():
    for name in ("resnet56", "resnet110"):
        assert build(name)(torch.rand(1, 3, 32, 32)).shape == (1, 10)


# Zhang et al. (2017), Table 1 (CIFAR-10, 28x28x3 inputs).
@pytest.mark.parametrize("make,expected", [
    (lambda: SmallInception(), 1_649_402),
    (lambda: SmallInception(batchnorm=False), 1_649_402),
    (lambda: SmallAlexNet(), 1_387_786),
    (lambda: MLP(hidden=(512, 512, 512), in_channels=3), 1_735_178),
    (lambda: MLP(hidden=(512,), in_channels=3), 1_209_866),
])
def test_zhang_et_al_parameter_counts(make, expected):
    assert count_parameters(make()) == expected


def test_known_parameter_counts():
    assert count_parameters(ResNet18()) == 11_173_962  # kuangliu/pytorch-cifar ResNet18
    assert count_parameters(resnet20()) == 272_474     # 1x1-conv projection shortcuts
    # noshort differs only by the two projection shortcuts (conv + BN each).
    proj = (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)
    assert count_parameters(resnet20(shortcut=False)) == 272_474 - proj


def test_count_parameters_trainable_only():
    m = MLP(hidden=(4,), in_features=3, num_classes=2)
    m.net[1].weight.requires_grad_(False)
    assert count_parameters(m) == 3 * 4 + 4 + 4 * 2 + 2
    assert count_parameters(m, trainable_only=True) == 4 + 4 * 2 + 2


@pytest.mark.parametrize("depth", [0, 19, 21, 57, 100])
def test_resnet_depth_validation(depth):
    with pytest.raises(ValueError, match=f"depth={depth}"):
        CifarResNet(depth)


def _zero_residual_branches(model: CifarResNet) -> None:
    """Make every block's residual branch output exactly zero (bn2 scale and shift = 0)."""
    with torch.no_grad():
        for block in model.layers:
            block.bn2.weight.zero_()
            block.bn2.bias.zero_()


def test_shortcut_false_has_no_skip():
    torch.manual_seed(0)
    short, noshort = CifarResNet(8), CifarResNet(8, shortcut=False)
    assert all(b.shortcut is not None for b in short.layers)
    assert all(b.shortcut is None for b in noshort.layers)
    # Same weights everywhere the two nets overlap ...
    missing, unexpected = noshort.load_state_dict(short.state_dict(), strict=False)
    assert not missing and all(".shortcut." in k for k in unexpected)
    for m in (short, noshort):
        _zero_residual_branches(m)
        m.eval()
    x = torch.rand(4, 3, 32, 32)
    # ... with a dead residual branch, the skip net still carries the input, the noshort net cannot:
    out_short, out_noshort = short(x), noshort(x)
    assert out_short.std(0).max() > 1e-4
    assert torch.allclose(out_noshort, noshort.fc.bias.expand_as(out_noshort))


def test_build_unknown_name():
    with pytest.raises(ValueError) as err:
        build("transformer")
    msg = str(err.value)
    assert "transformer" in msg
    for name in ("mlp", "cnn", "resnet20", "resnet56", "resnet110", "resnet18", "vgg", "inception", "alexnet"):
        assert name in msg and name in MODELS


def test_build_returns_right_classes():
    assert isinstance(build("cnn"), SmallCNN) and isinstance(build("VGG"), SmallVGG)
    r = build("resnet56", shortcut=False)
    assert isinstance(r, CifarResNet) and r.depth == 56 and not r.shortcut


@pytest.mark.parametrize("name,shape", [("mlp", (1, 28, 28)), ("cnn", (1, 28, 28)),
                                        ("resnet20", (3, 32, 32)), ("inception", (3, 28, 28)),
                                        ("alexnet", (3, 28, 28)), ("vgg", (3, 32, 32))])
def test_seeded_construction_is_deterministic(name, shape):
    torch.manual_seed(123)
    a = build(name)
    torch.manual_seed(123)
    b = build(name)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    torch.manual_seed(124)
    c = build(name)
    assert any(not torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))
    a.eval()
    x = torch.rand(3, *shape)
    with torch.no_grad():
        assert torch.equal(a(x), a(x))


def test_train_mode_updates_bn_but_eval_does_not():
    m = SmallCNN()
    x = torch.rand(8, 1, 28, 28)
    m.train()
    m(x)
    stats = m.features[1].running_mean.clone()
    m.eval()
    m(x)
    assert torch.equal(stats, m.features[1].running_mean)


def test_normalize_and_with_normalization():
    mean, std = (0.5, 0.25, 0.0), (0.5, 0.25, 2.0)
    x = torch.rand(2, 3, 4, 4)
    y = Normalize(mean, std)(x)
    assert torch.allclose(y[:, 0], (x[:, 0] - 0.5) / 0.5) and torch.allclose(y[:, 2], x[:, 2] / 2.0)
    net = SmallInception().eval()
    wrapped = with_normalization(net, mean, std)
    x = torch.rand(2, 3, 28, 28, requires_grad=True)
    out = wrapped(x)
    assert torch.allclose(out, net(Normalize(mean, std)(x)))
    out.sum().backward()  # gradients flow back to raw pixels (needed by attacks)
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert count_parameters(wrapped) == count_parameters(net)
    assert set(dict(wrapped.named_buffers())) >= {"0.mean", "0.std"}


# ----------------------------------------------------------------------------- backbones

def test_backbones_offline():
    feats, c = backbone("cnn", 1, width=8)
    assert feats(torch.zeros(2, 1, 28, 28)).shape == (2, c, 7, 7)
    feats, c = backbone("resnet18", 3, width=8)
    assert feats(torch.zeros(2, 3, 32, 32)).shape == (2, c, 4, 4)
    feats, c = backbone("densenet121")
    assert feats(torch.zeros(1, 3, 64, 64)).shape == (1, c, 2, 2) and c == 1024
    with pytest.raises(ValueError, match="backbone must be one of"):
        backbone("vit")
    with pytest.raises(ValueError, match="needs in_channels=3"):
        backbone("vgg11", 1)


def test_plain_classifier_is_the_small_cnn_for_cnn():
    plain = plain_classifier("cnn", (1, 28, 28), 10, width=8)
    cnn = SmallCNN(1, 10, width=8)
    assert count_parameters(plain) == count_parameters(cnn)
    assert plain(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_pretrained_weights_are_read_from_the_hub_cache_or_named(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(FileNotFoundError, match="resnet34-b627a593.pth"):
        backbone("resnet34", pretrained=True)
    import torchvision

    net = torchvision.models.resnet34(weights=None)
    (tmp_path / "checkpoints").mkdir()
    torch.save(net.state_dict(), tmp_path / "checkpoints" / "resnet34-b627a593.pth")
    feats, c = backbone("resnet34", pretrained=True)
    assert c == 512 and torch.equal(feats[0].weight, net.conv1.weight)


def test_mnist_cnn_is_the_papers_conv32_conv64_fc128():
    # Ansuini et al.'s mnist_archs.py: conv 1->32 (3x3) and 32->64 (3x3), each max-pooled, fc 1600->128, 128->10
    net = build("mnist_cnn")
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.padding) for c in convs] == [
        (1, 32, (3, 3), (0, 0)), (32, 64, (3, 3), (0, 0))]
    assert (net.hidden[0].in_features, net.hidden[0].out_features) == (1600, 128)
    assert (net.fc.in_features, net.fc.out_features) == (128, 10)
    # parameters counted by hand: 32*9+32 + 64*32*9+64 + 1600*128+128 + 128*10+10
    assert count_parameters(net) == 320 + 18496 + 204928 + 1290
    with pytest.raises(ValueError, match="at least 10 pixels"):
        build("mnist_cnn", image_size=8)
