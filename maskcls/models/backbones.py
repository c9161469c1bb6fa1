"""Models: any timm backbone with a single 18-way head or three heads (mask 3, gender 2, age 3).

Both kinds return 18 class logits, so every metric, CAM and ensemble works on either. For three heads the
logits are log p(mask) + log p(gender) + log p(age): their softmax is the product of the heads' softmaxes.
"""
from __future__ import annotations

import logging
import os
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

log = logging.getLogger(__name__)

# Shown first in the studio; any other timm name works too.
CURATED = ["resnet10t", "resnet18", "resnet34", "resnet50", "efficientnet_b0", "efficientnet_b1", "efficientnet_b2",
           "efficientnet_b3", "efficientnet_b4", "regnety_016", "convnext_small", "mobilenetv3_small_100"]
HEAD_SIZES = (3, 2, 3)  # mask, gender, age


class MaskModel(nn.Module):
    def __init__(self, backbone: nn.Module, head: str, drop_rate: float = 0.0):
        super().__init__()
        self.backbone = backbone
        self.head_type = head
        # models with a conv head (MobileNetV3, LCNet) pool to head_hidden_size, not num_features
        feat = getattr(backbone, "head_hidden_size", None) or backbone.num_features
        self.drop = nn.Dropout(drop_rate)
        if head == "single":
            self.head = nn.Linear(feat, 18)
        elif head == "multi":
            self.head = nn.ModuleDict({n: nn.Linear(feat, k) for n, k in zip(("mask", "gender", "age"), HEAD_SIZES)})
        else:
            raise ValueError(f"head must be 'single' or 'multi', got {head!r}")

    def head_logits(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-head logits: {'class': (B, 18)} or {'mask': (B, 3), 'gender': (B, 2), 'age': (B, 3)}."""
        f = self.drop(self.backbone(x))  # (B, F) pooled features
        if self.head_type == "single":
            return {"class": self.head(f)}
        return {n: h(f) for n, h in self.head.items()}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head_logits(x)
        return out["class"] if "class" in out else combine_heads(out)


def combine_heads(out: dict[str, torch.Tensor]) -> torch.Tensor:
    """(B,3),(B,2),(B,3) head logits -> (B,18) log-probabilities in the competition's class order."""
    m = F.log_softmax(out["mask"].float(), 1)
    g = F.log_softmax(out["gender"].float(), 1)
    a = F.log_softmax(out["age"].float(), 1)
    return (m[:, :, None, None] + g[:, None, :, None] + a[:, None, None, :]).reshape(-1, 18)


def _load_weights(backbone: nn.Module, path: str) -> None:
    if not os.path.isfile(path):
        raise ValueError(f"weights file {path!r} does not exist")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file
        state = load_file(path)
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state.get("model", state)) if isinstance(state, dict) else state
    result = backbone.load_state_dict(state, strict=False)
    log.info("loaded %s: %d missing, %d unexpected keys", path, len(result.missing_keys), len(result.unexpected_keys))


def check_model(name: str, image_size) -> None:
    """Refuse, before any training, a model name timm does not know or an input size the model cannot take
    (ViT, Swin, DeiT: a fixed input size)."""
    import timm
    if not timm.is_model(name):
        close = timm.list_models(f"*{name[:6]}*")[:8]
        raise ValueError(f"unknown model {name!r}; similar timm names: {close or 'none'}")
    cfg = timm.get_pretrained_cfg(name)
    if cfg is not None and cfg.fixed_input_size and tuple(image_size) != tuple(cfg.input_size[1:]):
        h, w = cfg.input_size[1:]
        raise ValueError(f"model {name} takes a fixed input size of {h}x{w}, but image_size is "
                         f"{image_size[0]}x{image_size[1]}: set image_size=[{h}, {w}] or choose a convolutional model")


def create_model(name: str, pretrained: bool = False, weights_file: str = "", head: str = "single",
                 drop_rate: float = 0.0) -> tuple[MaskModel, str | None]:
    """Build the model; returns it and a warning text when pretrained weights could not be had."""
    import timm
    if not timm.is_model(name):
        close = timm.list_models(f"*{name[:6]}*")[:8]
        raise ValueError(f"unknown model {name!r}; similar timm names: {close or 'none'}")
    warning = None
    if weights_file:
        backbone = timm.create_model(name, pretrained=False, num_classes=0)
        _load_weights(backbone, weights_file)
    elif pretrained:
        try:
            backbone = timm.create_model(name, pretrained=True, num_classes=0)
        except Exception as e:  # offline, no weights for this name, hub error
            warning = (f"pretrained weights for {name} could not be loaded ({type(e).__name__}: {str(e)[:160]}); "
                       f"training from random initialisation. Give a local weights file to use pretrained weights.")
            warnings.warn(warning)
            backbone = timm.create_model(name, pretrained=False, num_classes=0)
    else:
        backbone = timm.create_model(name, pretrained=False, num_classes=0)
    return MaskModel(backbone, head, drop_rate), warning


def set_backbone_trainable(model: MaskModel, trainable: bool) -> None:
    for p in model.backbone.parameters():
        p.requires_grad_(trainable)


def parameter_count(name: str) -> int:
    """How many weights the model has, counted on the meta device (nothing allocated, nothing downloaded)."""
    import timm
    import torch
    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False, num_classes=18)
    return sum(p.numel() for p in model.parameters())
