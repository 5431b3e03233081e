"""The Predict page through AppTest: uploads (from bytes; bad files reported), folder batches, threshold."""

from __future__ import annotations

from pathlib import Path

from appsupport import open_page, shown

from bincls.inference.evaluate import save_threshold
from bincls.paths import SAMPLE_DATA
from pages.support.shared.keys import PREDICT_FOLDER_INPUT, PREDICT_HEATMAPS, PREDICT_UPLOADS


def upload(name: str, data: bytes) -> tuple[str, bytes, str]:
    return (name, data, "image/jpeg")


def test_uploaded_images_are_predicted_and_a_bad_one_is_reported(sample_run):
    at = open_page("predict")
    bees = sorted((SAMPLE_DATA / "bees").iterdir())[:2]
    ant = sorted((SAMPLE_DATA / "ants").iterdir())[0]
    good = bees[0].read_bytes()
    files = [upload(p.name, p.read_bytes()) for p in (*bees, ant)]
    # A name that would be a dangerous path: uploads are predicted from their bytes, never opened by name.
    files += [upload("../../etc/passwd.jpg", b"not an image at all"),
              upload("cut.jpg", good[: len(good) // 3])]
    at.file_uploader(key=PREDICT_UPLOADS).set_value(files).run()
    assert not at.exception, [e.value for e in at.exception]
    errors = [shown(e.value) for e in at.error]
    assert len(errors) == 2
    assert any("passwd.jpg" in e and "not an image" in e for e in errors)
    assert any("cut.jpg" in e and "truncated" in e for e in errors)
    cards = [m.value for m in at.markdown if " sure" in m.value]
    assert len(cards) == 3 and all(c.startswith(("**ants**", "**bees**")) for c in cards)
    assert sum(1 for p in at.get("progress") if p.proto.text.startswith(("ants:", "bees:"))) == 6
    assert len(at.get("image")) >= 6, "each card shows the image and its heat map"
    assert any("Grad-CAM" in c.value and "predicted" in c.value for c in at.caption)
    table = at.dataframe[0].value
    assert list(table["File"]) == [f[0] for f in files]
    assert table["Image"].iloc[0].startswith("data:image/jpeg;base64,")
    assert table["Probability"].iloc[:3].between(0.5, 1).all()
    assert list(table["Problem"].iloc[3:] != "") == [True, True]
    assert not (Path.cwd() / "etc").exists()


def test_heat_maps_can_be_turned_off(sample_run):
    at = open_page("predict")
    bee = sorted((SAMPLE_DATA / "bees").iterdir())[0]
    at.toggle(key=PREDICT_HEATMAPS).set_value(False).run()
    at.file_uploader(key=PREDICT_UPLOADS).set_value([upload(bee.name, bee.read_bytes())]).run()
    assert not at.exception
    assert len(at.get("image")) == 1 and not at.dataframe, "one image: a card, no table"


def test_a_folder_is_predicted_as_a_batch_with_the_saved_threshold(sample_run):
    save_threshold(sample_run.path, 0.0)  # everything is called the second class
    at = open_page("predict")
    assert any("0.00" in c.value and "saved on the Evaluate page" in c.value for c in at.caption)
    at.text_input(key=PREDICT_FOLDER_INPUT).set_value(str(SAMPLE_DATA / "ants"))
    next(b for b in at.button if b.label == "Predict folder").click().run()
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[0].value
    assert len(table) == 30 and set(table["Predicted"]) == {"bees"}
    assert all(Path(f).parent == SAMPLE_DATA / "ants" for f in table["File"])
    assert not at.error


def test_a_missing_folder_is_a_message(sample_run, tmp_path):
    at = open_page("predict")
    at.text_input(key=PREDICT_FOLDER_INPUT).set_value(str(tmp_path / "nowhere"))
    next(b for b in at.button if b.label == "Predict folder").click().run()
    assert not at.exception
    assert any("is not a folder" in e.value for e in at.error)
