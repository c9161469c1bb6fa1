"""Tests of backbones."""
import pytest
import torch
import torch.nn.functional as F

from maskcls.models.backbones import create_model, CURATED


def test_three_head_model_gives_a_proper_18_class_distribution():
    model, _ = create_model("test_efficientnet", head="multi")
    p = F.softmax(model(torch.randn(4, 3, 64, 48)), 1)
    assert p.shape == (4, 18) and bool((p >= 0).all())
    assert torch.allclose(p.sum(1), torch.ones(4), atol=1e-5)
    heads = model.head_logits(torch.randn(2, 3, 64, 48))
    assert {k: v.shape[1] for k, v in heads.items()} == {"mask": 3, "gender": 2, "age": 3}


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
