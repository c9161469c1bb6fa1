"""Grad-CAM and friends through pytorch-grad-cam, with target layers chosen per timm family.

For three-head models a CAM can explain one head (mask, gender or age) or the combined 18-class output.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from maskcls.augment.pipelines import normalize
from maskcls.augment.spec import AugmentSpec
from maskcls.models.backbones import MaskModel


def _methods() -> dict:
    from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, LayerCAM, ScoreCAM, XGradCAM
    return {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus, "eigencam": EigenCAM, "xgradcam": XGradCAM,
            "layercam": LayerCAM, "scorecam": ScoreCAM}


def list_cam_methods() -> list[str]:
    return list(_methods())


def _resolve(module: nn.Module, dotted: str) -> nn.Module:
    for part in dotted.split("."):
        module = module[int(part)] if part.isdigit() else getattr(module, part)
    return module


def target_layer(model: MaskModel, override: str = "") -> tuple[nn.Module, object]:
    """The layer to explain (and a reshape transform for transformers). `override`: a dotted path in the backbone."""
    b = model.backbone
    if override:
        try:
            return _resolve(b, override), None
        except (AttributeError, IndexError, ValueError):
            names = [n for n, _ in b.named_children()]
            raise ValueError(f"target layer {override!r} not found in {type(b).__name__}; top-level parts: {names}") from None
    name = type(b).__name__.lower()
    if hasattr(b, "conv_head") and "efficientnet" in name:
        return b.conv_head, None
    if hasattr(b, "layer4"):  # ResNet family
        return b.layer4[-1], None
    if hasattr(b, "final_conv") and hasattr(b, "s4"):  # RegNet
        return b.s4, None
    if hasattr(b, "stages"):  # ConvNeXt and other staged nets
        if "swin" in name:
            from pytorch_grad_cam.utils.reshape_transforms import swinT_reshape_transform
            return b.layers[-1].blocks[-1].norm1 if hasattr(b, "layers") else b.stages[-1], swinT_reshape_transform
        return b.stages[-1], None
    if hasattr(b, "layers") and "swin" in name:
        return b.layers[-1].blocks[-1].norm1, _swin_nhwc
    if hasattr(b, "blocks") and hasattr(b, "patch_embed") and not hasattr(b, "conv_head"):  # ViT
        grid = b.patch_embed.grid_size
        prefix = getattr(b, "num_prefix_tokens", 1)
        return b.blocks[-1].norm1, lambda t: _vit_reshape(t, grid, prefix)
    if hasattr(b, "blocks"):  # MobileNet / other EfficientNet-like
        return b.blocks[-1], None
    raise ValueError(f"no default Grad-CAM layer for {type(b).__name__}: give a target layer path")


def _vit_reshape(t: torch.Tensor, grid, prefix: int) -> torch.Tensor:
    t = t[:, prefix:, :]  # (B, N, C) without class/register tokens
    return t.reshape(t.shape[0], grid[0], grid[1], t.shape[2]).permute(0, 3, 1, 2)


def _swin_nhwc(t: torch.Tensor) -> torch.Tensor:
    return t.permute(0, 3, 1, 2) if t.dim() == 4 else t


class HeadOutput(nn.Module):
    """Expose one head's logits (or the combined 18) as the model output, for CAM targets."""

    def __init__(self, model: MaskModel, head: str = "class"):
        super().__init__()
        self.model, self.head = model, head

    def forward(self, x):
        if self.head == "class":
            return self.model(x)
        return self.model.head_logits(x)[self.head]


def image_tensor(pixels: np.ndarray, spec: AugmentSpec) -> torch.Tensor:
    """(H, W, 3) uint8 as the model sees it: (1, 3, H, W) normalised."""
    return normalize(torch.from_numpy(np.array(pixels)).permute(2, 0, 1), spec).unsqueeze(0)


def compute_cam(model: MaskModel, pixels: np.ndarray, spec: AugmentSpec, target: int, *, method: str = "gradcam",
                head: str = "class", layer: str = "") -> np.ndarray:
    """A (H, W) map in [0, 1] for `target` (a class, or an index of `head`), at the image's size."""
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    methods = _methods()
    if method not in methods:
        raise ValueError(f"unknown CAM method {method!r}; valid: {list(methods)}")
    module, reshape = target_layer(model, layer)
    wrapped = HeadOutput(model, head).eval()
    x = image_tensor(pixels, spec)
    with methods[method](model=wrapped, target_layers=[module], reshape_transform=reshape) as cam:
        grey = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(target))])[0]  # (H, W)
    grey = np.nan_to_num(grey.astype(np.float32))
    lo, hi = float(grey.min()), float(grey.max())
    return (grey - lo) / (hi - lo) if hi > lo else np.zeros_like(grey)


def overlay(pixels: np.ndarray, grey: np.ndarray, weight: float = 0.5) -> np.ndarray:
    """Heatmap on the image: (H, W, 3) uint8."""
    from pytorch_grad_cam.utils.image import show_cam_on_image
    return show_cam_on_image(pixels.astype(np.float32) / 255.0, grey, use_rgb=True, image_weight=weight)


def explain_image(model: MaskModel, cfg, path: str, targets: list[tuple[int, str]], *, method: str = "gradcam",
                  head: str = "class") -> tuple[list[np.ndarray], list[str]]:
    """The image as the model sees it, then one overlay per (class, caption) in `targets`.

    With `head` = mask / gender / age (three-head models) each class is explained through that head's value.
    Pixels come from the same preprocessing as training's validation pass (size and crop from `cfg`).
    """
    from maskcls.data.labels import attribute_of
    spec = cfg.augment_spec()
    pixels = cfg.preprocess().pixels(path, "held_out")  # the run's recipe, as its validation pass saw the photo
    views, captions = [pixels], ["input"]
    for cls, caption in targets:
        index = cls if head == "class" else int(attribute_of([cls], head)[0])
        views.append(overlay(pixels, compute_cam(model, pixels, spec, int(index), method=method, head=head)))
        captions.append(caption + ("" if head == "class" else f" ({head} head)"))
    return views, captions
