"""Tests of imageio."""
import numpy as np
import pytest
from PIL import Image

from conftest import app_test, run_cli
from maskcls.augment.preview import load_source
from maskcls.augment.spec import AugmentSpec
from maskcls.data.imageio import ImageError, load_rgb


# 5 ------------------------------------------------------------------------------------------------------------
@pytest.fixture
def tiny_image_root(tmp_path):
    folder = tmp_path / "root/train/images/000001_male_Asian_20"
    folder.mkdir(parents=True)
    for stem in ("mask1", "mask2", "mask3", "mask4", "mask5", "incorrect_mask", "normal"):
        Image.new("RGB", (48, 64), (120, 90, 60)).save(folder / f"{stem}.jpg")
    Image.new("RGB", (1, 1), (0, 0, 0)).save(folder / "mask1.jpg")
    return tmp_path / "root", folder / "mask1.jpg"


def test_a_1x1_image_gets_a_message_in_the_cli_and_the_library(tiny_image_root, tmp_path, capsys):
    _, small = tiny_image_root
    with pytest.raises(ImageError, match=r"image too small \(1x1\): expected at least 16x16"):
        load_source(str(small), AugmentSpec())
    code, _, err = run_cli(capsys, "augment", "preview", str(small), "--out", str(tmp_path / "g.png"))
    assert code == 2 and "image too small (1x1)" in err and "Traceback" not in err


def test_a_1x1_image_gets_a_message_on_the_augment_page(tiny_image_root, tmp_path):
    root, small = tiny_image_root
    at = app_test("pages/augment.py", data_root=str(root), runs_root=str(tmp_path), aug_path=str(small))
    assert not at.exception
    assert any("image too small" in e.value for e in at.error), [e.value for e in at.error]


def test_the_cache_skips_a_1x1_image_with_its_reason(tiny_image_root, tmp_path):
    from maskcls.data.cache import build_cache
    root, small = tiny_image_root
    paths = sorted(str(p) for p in small.parent.iterdir())
    cache = build_cache(paths, (64, 48), tmp_path / "c", None, workers=1)
    assert [(p, r) for p, r in cache.problems] == [(str(small), "image too small (1x1): expected at least 16x16 pixels")]


def test_an_image_over_pils_bomb_limit_is_too_large_not_a_warning(tmp_path):
    Image.new("1", (10_000, 9_000)).save(tmp_path / "huge.png")  # 90 MP: past PIL's 89 MP warning
    with pytest.raises(ImageError) as e:
        load_rgb(tmp_path / "huge.png")
    assert "image too large (10000x9000" in e.value.reason and "DecompressionBomb" not in e.value.reason


def _save(img, path, **kw):
    img.save(path, **kw)
    return path


def test_alpha_grey_cmyk_and_exif_rotation_load_as_upright_rgb(tmp_path):
    rgba = Image.new("RGBA", (40, 30), (255, 0, 0, 0))
    assert load_rgb(_save(rgba, tmp_path / "a.png")).getpixel((0, 0)) == (255, 255, 255)  # transparent -> white
    grey = load_rgb(_save(Image.new("L", (40, 30), 90), tmp_path / "g.jpg"))
    assert grey.mode == "RGB" and abs(grey.getpixel((5, 5))[0] - 90) <= 2
    cmyk = load_rgb(_save(Image.new("CMYK", (40, 30), (0, 255, 255, 0)), tmp_path / "c.jpg"))
    r, g, b = cmyk.getpixel((5, 5))
    assert cmyk.mode == "RGB" and r > 200 and g < 60 and b < 60
    tall = Image.new("RGB", (40, 30), (0, 0, 0))
    tall.paste((255, 255, 255), (0, 0, 20, 30))  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    upright = load_rgb(_save(tall, tmp_path / "r.jpg", exif=exif))
    assert upright.size == (30, 40)  # width and height swapped: the tag was honoured
    assert np.asarray(upright)[2, 15].mean() > 200 and np.asarray(upright)[-3, 15].mean() < 60


def test_very_large_image_is_refused_by_name(tmp_path, monkeypatch):
    import maskcls.data.imageio
    monkeypatch.setattr(maskcls.data.imageio, "MAX_PIXELS", 1000)
    path = _save(Image.new("RGB", (100, 100)), tmp_path / "big.jpg")
    with pytest.raises(ImageError, match="big.jpg: image too large"):
        load_rgb(path)


def test_a_16_bit_png_is_scaled_to_8_bits_not_white(tmp_path):
    from maskcls.data.imageio import load_preprocessed, load_rgb
    ramp = np.linspace(0, 65535, 64 * 48).reshape(64, 48).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)
    rgb = np.asarray(load_rgb(path))
    assert rgb.shape == (64, 48, 3) and rgb.min() == 0 and rgb.max() == 255
    assert abs(rgb.mean() - 127.5) < 2  # a ramp, not a white image
    assert abs(load_preprocessed(path, (32, 24)).mean() - 127.5) < 3  # what the cache stores
