"""Tests of losses."""
import pytest
import torch
import torch.nn.functional as F

from maskcls.models.losses import create_loss, F1Loss, FocalLoss


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
