"""Augment page in AppTest: sliders change the grid, bad values get messages, JSON import and save."""
import pytest
from conftest import app_test
from maskcls.augment.spec import list_saved_specs


def grid(at):
    """The proto of the preview grid (the page's one st.image call)."""
    return at.get("image")[0].proto


@pytest.mark.slow
def test_slider_move_changes_the_grid(studio_demo, tmp_path):
    at = app_test("pages/augment.py", runs_root=str(tmp_path))
    assert not at.exception
    before = grid(at)
    assert len(before.imgs) == 9  # original + 8 draws
    at.slider(key="aug_color_jitter_brightness").set_value(0.9).run()
    assert not at.exception
    after = grid(at)
    assert [i.url for i in before.imgs[1:]] != [i.url for i in after.imgs[1:]]
    assert before.imgs[0].url == after.imgs[0].url  # the original is unchanged


@pytest.mark.slow
def test_bad_values_get_a_message_next_to_the_control(studio_demo, tmp_path):
    at = app_test("pages/augment.py", runs_root=str(tmp_path))
    at.checkbox(key="aug_gaussian_blur_on").check().run()
    at.number_input(key="aug_gaussian_blur_sigma_min").set_value(-1.0).run()
    assert not at.exception
    assert any("sigma" in e.value for e in at.error)
    at.number_input(key="aug_gaussian_blur_sigma_min").set_value(0.1).run()
    at.checkbox(key="aug_crop_on").check().run()
    at.number_input(key="aug_crop_h").set_value(900).run()
    assert any("larger than the image" in e.value for e in at.error)


@pytest.mark.slow
def test_import_and_save(studio_demo, tmp_path):
    at = app_test("pages/augment.py", runs_root=str(tmp_path))
    at.text_area(key="aug_import_text").input("{broken").run()
    at.button[-1].click().run()
    assert any("Import refused" in e.value and "not valid JSON" in e.value for e in at.error)
    at.text_area(key="aug_import_text").input('{"mode": "preprocess", "crop": [320, 256], '
                                              '"transforms": [{"name": "grayscale", "p": 1.0}]}').run()
    at.button[-1].click().run()
    assert not at.exception and at.radio(key="aug_mode").value == "preprocess"
    assert at.checkbox(key="aug_grayscale_on").value
    at.text_input(key="aug_name").input("gray").run()
    next(b for b in at.button if b.label == "Save for training").click().run()
    assert list_saved_specs(tmp_path) == ["gray"]
    assert at.session_state["train_augment"] == "gray"
