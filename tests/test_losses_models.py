import numpy as np
import pytest
import torch
import torch.nn.functional as F

from maskcls.models.losses import F1Loss, FocalLoss, create_loss
from maskcls.models.backbones import CURATED, create_model
from maskcls.train.sampling import epoch_indices, sample_weights


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(64, 18, generator=g), torch.randint(0, 18, (64,), generator=g)


def test_focal_with_gamma_0_is_cross_entropy(batch):
    logits, y = batch
    assert torch.allclose(FocalLoss(gamma=0.0)(logits, y), F.cross_entropy(logits, y), atol=1e-6)


def test_label_smoothing_matches_torch(batch):
    logits, y = batch
    ours = create_loss("smooth", smoothing=0.1)(logits, y)
    assert torch.allclose(ours, F.cross_entropy(logits, y, label_smoothing=0.1), atol=1e-6)


def test_f1_loss_is_minimised_by_the_right_prediction(batch):
    _, y = batch
    right = F.one_hot(y, 18).float() * 20
    wrong = F.one_hot((y + 1) % 18, 18).float() * 20
    loss = F1Loss()
    assert loss(right, y) < 0.01 < 0.99 < loss(wrong, y)
    assert loss(right, y) < loss(torch.zeros(64, 18), y)


def test_losses_accept_soft_targets(batch):
    logits, y = batch
    soft = 0.7 * F.one_hot(y, 18).float() + 0.3 * F.one_hot((y + 3) % 18, 18).float()
    for name in ("ce", "focal", "smooth", "f1", "combo"):
        assert torch.isfinite(create_loss(name)(logits, soft))


def test_three_head_model_gives_a_proper_18_class_distribution():
    model, _ = create_model("test_efficientnet", head="multi")
    p = F.softmax(model(torch.randn(4, 3, 64, 48)), 1)
    assert p.shape == (4, 18) and bool((p >= 0).all())
    assert torch.allclose(p.sum(1), torch.ones(4), atol=1e-5)
    heads = model.head_logits(torch.randn(2, 3, 64, 48))
    assert {k: v.shape[1] for k, v in heads.items()} == {"mask": 3, "gender": 2, "age": 3}


def test_weighted_sampler_draws_classes_near_uniform():
    real = [2745, 2050, 415, 3660, 4085, 545, 549, 410, 83, 732, 817, 109, 549, 410, 83, 732, 817, 109]
    labels = np.repeat(np.arange(18), real)
    idx = epoch_indices(len(labels), sample_weights(labels, "class"), torch.Generator().manual_seed(0))
    counts = np.bincount(labels[idx.numpy()], minlength=18)
    expected = len(labels) / 18
    assert np.all(np.abs(counts - expected) <= 0.1 * expected), counts


def test_age_sampler_balances_age_bands():
    labels = np.repeat(np.arange(18), [2745, 2050, 415, 3660, 4085, 545, 549, 410, 83, 732, 817, 109, 549, 410, 83,
                                       732, 817, 109])
    idx = epoch_indices(len(labels), sample_weights(labels, "age"), torch.Generator().manual_seed(1))
    bands = np.bincount(labels[idx.numpy()] % 3, minlength=3)
    assert np.all(np.abs(bands - len(labels) / 3) <= 0.05 * len(labels) / 3)


def test_unknown_model_is_named():
    with pytest.raises(ValueError, match="unknown model 'efficientnet_b99'"):
        create_model("efficientnet_b99")


def test_offline_pretrained_falls_back_with_a_warning():
    model, warning = create_model("test_resnet", pretrained=True)
    assert warning and "random initialisation" in warning


def test_local_weights_file(tmp_path):
    import timm
    src = timm.create_model("test_resnet", num_classes=0)
    torch.save(src.state_dict(), tmp_path / "w.pth")
    model, warning = create_model("test_resnet", weights_file=str(tmp_path / "w.pth"))
    assert warning is None
    for k, v in src.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[k], v)


@pytest.mark.parametrize("name", CURATED)
def test_curated_models_build_and_give_18_logits(name):
    model, warning = create_model(name, pretrained=False, head="multi")
    assert warning is None
    with torch.no_grad():
        out = model.eval()(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 18) and torch.isfinite(out).all()
    assert torch.allclose(out.exp().sum(1), torch.ones(2), atol=1e-4)  # three heads combine to a distribution
