"""Hostile access: with BINCLS_DATA_ROOT set, every folder the app accepts stays inside it; deleting runs
stays inside the runs folder; uploaded names never become paths."""

from __future__ import annotations

import os
from pathlib import Path

import imagefactory as fac
import pytest
from appsupport import button, data_page, open_page, shown
from streamlit.testing.v1 import AppTest

from bincls import BinclsError
from bincls.data.data_root import ENV, browse_home, confine, data_root
from bincls.data.uploads import new_upload_session, safe_name, save_uploads
from bincls.paths import SAMPLE_DATA, runs_dir, uploads_dir
from bincls.runs.folder import RunFolder
from pages.support.shared import keys

APP = str(Path(__file__).resolve().parents[2] / "app.py")
PNG = fac.encode(fac.rgb_image(seed=3), "PNG")


@pytest.fixture
def world(tmp_path) -> dict[str, Path]:
    """A served root with a dataset and traps, and a secret dataset beside it (outside the root)."""
    root, secret = tmp_path / "served", tmp_path / "secret"
    for base, seed in ((root / "pets", 0), (secret, 500)):
        fac.make_folder(base / "cats", 4, seed=seed)
        fac.make_folder(base / "dogs", 4, seed=seed + 100)
    os.symlink(secret, root / "shortcut")  # a link inside the root that leads out of it
    os.symlink(root / "pets", root / "pets-link")  # a link that stays inside
    return {"root": root, "secret": secret}


@pytest.fixture
def served(world, monkeypatch) -> dict[str, Path]:
    monkeypatch.setenv(ENV, str(world["root"]))
    return world


# The engine: bincls.data.data_root -----------------------------------------------------------------------
def test_unset_root_changes_nothing(world, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert data_root() is None and browse_home() == Path.home()
    assert confine(world["secret"]) == world["secret"]
    assert confine(world["root"] / "shortcut") == world["root"] / "shortcut"  # links kept as given
    assert confine("~") == Path.home()


def test_paths_inside_the_root_are_given_as_real_paths(served):
    root = served["root"]
    assert data_root() == root and browse_home() == root
    assert confine(root) == root
    assert confine(root / "pets" / "cats") == root / "pets" / "cats"
    assert confine("pets/cats") == root / "pets" / "cats"  # relative: from the root
    assert confine(root / "pets" / ".." / "pets") == root / "pets"
    assert confine(root / "pets-link") == root / "pets"
    assert confine(root / "not-yet") == root / "not-yet"  # existence is the layout's job


@pytest.mark.parametrize(
    "given, hint",
    [
        ("{secret}", "leads outside the folder"),
        ("{root}/..", "leads outside the folder"),
        ("{root}/../secret/cats", "leads outside the folder"),
        ("../secret", "leads outside the folder"),
        ("{root}/shortcut", "through a link"),
        ("{root}/shortcut/cats", "through a link"),
        ("/", "leads outside the folder"),
        ("{root}-other", "leads outside the folder"),  # a sibling that shares the root's prefix
    ],
)
def test_paths_leaving_the_root_are_refused(served, given, hint):
    text = given.format(root=served["root"], secret=served["secret"])
    with pytest.raises(BinclsError) as exc:
        confine(text)
    assert hint in str(exc.value) and text in str(exc.value) and str(served["root"]) in str(exc.value)


def test_a_nul_byte_and_a_missing_root_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV, str(tmp_path))
    with pytest.raises(BinclsError, match="NUL"):
        confine(f"{tmp_path}/a\x00b")
    monkeypatch.setenv(ENV, str(tmp_path / "gone"))
    with pytest.raises(BinclsError, match=f"{ENV} is set to .*gone.*not a folder"):
        confine(tmp_path / "gone")


def test_a_root_given_through_a_link_works(world, monkeypatch, tmp_path):
    os.symlink(world["root"], tmp_path / "root-link")
    monkeypatch.setenv(ENV, str(tmp_path / "root-link"))
    assert confine(tmp_path / "root-link" / "pets") == world["root"] / "pets"
    with pytest.raises(BinclsError):
        confine(world["secret"])


# The Data page -----------------------------------------------------------------------------------




def errors(at: AppTest) -> str:
    return shown(" ".join(e.value for e in at.error))


def typed_root(at: AppTest, text: str) -> AppTest:
    at.text_input(key=keys.DATA_ROOT_INPUT).input(text)
    button(at, "Use this folder").click()
    return at.run()


@pytest.mark.parametrize("given", ["{secret}", "{root}/../secret", "{root}/shortcut", "../secret"])
def test_typed_paths_leaving_the_root_are_refused_on_the_data_page(served, given):
    text = given.format(root=served["root"], secret=served["secret"])
    at = typed_root(data_page(), text)
    assert not at.exception
    assert "leads outside" in errors(at) and "The data in use did not change" in errors(at)
    assert at.session_state[keys.DATA_PATHS] == [str(SAMPLE_DATA)]


def test_typed_paths_inside_the_root_work_relative_ones_too(served):
    at = typed_root(data_page(), "pets")
    assert not at.exception and not at.error
    assert at.session_state[keys.DATA_PATHS] == [str(served["root"] / "pets")]
    at = typed_root(at, str(served["root"] / "pets-link"))
    assert not at.error and at.session_state[keys.DATA_PATHS] == [str(served["root"] / "pets")]


def test_two_typed_class_folders_must_both_be_inside(served):
    at = data_page()
    at.text_input(key=keys.DATA_CLASS_A_INPUT).input(str(served["root"] / "pets" / "cats"))
    at.text_input(key=keys.DATA_CLASS_B_INPUT).input(str(served["secret"] / "dogs"))
    button(at, "Use these two folders").click()
    at.run()
    assert "leads outside" in errors(at) and str(served["secret"] / "dogs") in errors(at)
    assert at.session_state[keys.DATA_PATHS] == [str(SAMPLE_DATA)]


def listing(at: AppTest) -> list[str]:
    return next((list(d.value["folder"]) for d in at.dataframe if "folder" in d.value.columns), [])


def test_the_folder_browser_starts_at_the_root_and_never_goes_above_it(served):
    root = served["root"]
    at = data_page()  # the browser's folder defaults to the home folder, outside the root
    assert at.session_state[keys.BROWSE_DIR] == str(root)
    assert listing(at) == ["pets", "pets-link"]  # the link leading out is not listed
    assert button(at, "Up").disabled
    assert button(at, "Sample").disabled  # the sample's folder is outside the root

    at.selectbox(key=keys.BROWSE_SELECTED).set_value("pets")
    button(at, "Open").click()
    at.run()
    assert at.session_state[keys.BROWSE_DIR] == str(root / "pets")
    assert not button(at, "Up").disabled
    button(at, "Up").click()
    at.run()
    assert at.session_state[keys.BROWSE_DIR] == str(root) and button(at, "Up").disabled
    at.session_state[keys.BROWSE_DIR] = str(root / "pets" / "cats")
    at.run()
    button(at, "Home").click()
    at.run()
    assert at.session_state[keys.BROWSE_DIR] == str(root)
    assert not at.exception and not at.error


@pytest.mark.parametrize("where", ["/", "{secret}", "{root}/shortcut", "{root}/.."])
def test_a_browser_folder_outside_the_root_falls_back_to_the_root(served, where):
    folder = where.format(root=served["root"], secret=served["secret"])
    at = data_page(**{keys.BROWSE_DIR: folder})
    assert at.session_state[keys.BROWSE_DIR] == str(served["root"])
    assert listing(at) == ["pets", "pets-link"]


def test_browser_actions_are_confined_even_when_called_with_an_outside_folder(served):
    """The buttons' callbacks refuse outside folders themselves, not only through what is listed."""
    at = data_page(**{keys.BROWSE_DIR: str(served["root"] / "pets")})
    at.selectbox(key=keys.BROWSE_SELECTED).set_value("cats")
    # What a forged "Up" from the root, or "As class A" on a planted path, would ask for:
    at.session_state[keys.BROWSE_DIR] = str(served["root"] / "shortcut")
    button(at, "As class A").click()  # its folder is read at click time: root/shortcut/cats
    at.run()
    assert "through a link" in errors(at)
    assert at.session_state[keys.BROWSE_PICKS]["A"] is None


def test_the_sample_and_uploads_stay_usable_with_a_root(served):
    at = data_page(**{keys.DATA_PATHS: [str(served["root"] / "pets")]})
    button(at, "Use the sample").click()
    at.run()
    assert not at.error and at.session_state[keys.DATA_PATHS] == [str(SAMPLE_DATA)]

    at.text_input(key=keys.UPLOAD_NAMES[0]).input("a")
    at.text_input(key=keys.UPLOAD_NAMES[1]).input("b")
    at.file_uploader(key=f"{keys.UPLOAD_FILES[0]}-0").set_value(
        [(f"a{i}.png", fac.encode(fac.rgb_image(seed=i), "PNG"), "image/png") for i in range(4)]
    )
    at.file_uploader(key=f"{keys.UPLOAD_FILES[1]}-0").set_value(
        [(f"b{i}.png", fac.encode(fac.rgb_image(seed=50 + i), "PNG"), "image/png") for i in range(4)]
    )
    button(at, "Use the uploaded images").click()
    at.run()
    assert not at.exception and not at.error
    assert all(Path(p).parent.parent == uploads_dir() for p in at.session_state[keys.DATA_PATHS])


def test_without_a_root_the_browser_goes_anywhere(world, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    at = data_page(**{keys.BROWSE_DIR: str(world["root"])})
    assert listing(at) == ["pets", "pets-link", "shortcut"]
    assert not button(at, "Up").disabled and not button(at, "Sample").disabled
    at = typed_root(at, str(world["secret"]))
    assert not at.error and at.session_state[keys.DATA_PATHS] == [str(world["secret"])]


# Evaluate and Predict: "another folder" and "a folder" -------------------------------------------
@pytest.mark.parametrize("given", ["{secret}", "{root}/shortcut", "{root}/../secret"])
def test_evaluate_on_another_folder_is_confined(served, sample_run, given):
    at = open_page("evaluate")
    at.radio(key=keys.EVAL_SOURCE).set_value("folder").run()
    at.text_input(key=keys.EVAL_FOLDER).input(given.format(**served)).run()
    assert not at.exception, [e.value for e in at.exception]
    assert "leads outside" in errors(at)
    assert not at.metric  # nothing was evaluated


@pytest.mark.parametrize("given", ["{secret}", "{root}/shortcut", "/"])
def test_predict_a_folder_is_confined(served, sample_run, given):
    at = open_page("predict")
    at.text_input(key=keys.PREDICT_FOLDER_INPUT).input(given.format(**served))
    next(b for b in at.button if b.label == "Predict folder").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "leads outside" in errors(at)
    assert not at.dataframe


# Deleting runs stays inside the runs folder ------------------------------------------------------
def finished_run(base: Path) -> RunFolder:
    run = RunFolder.create(base, "x")
    run.set_status(state="finished")
    return run


def test_delete_refuses_a_link_in_the_runs_folder_that_leads_out(tmp_path):
    outside = finished_run(tmp_path / "elsewhere")
    link = runs_dir() / "20990101-000000-link-0000"
    os.symlink(outside.path, link)
    with pytest.raises(BinclsError, match="Refusing"):
        RunFolder(link).delete()
    assert (outside.path / "status.json").exists()


@pytest.mark.parametrize("crafted", ["{runs}/../elsewhere/{name}", "{runs}", "{runs}/{name}/..", "/"])
def test_delete_refuses_crafted_paths(tmp_path, crafted):
    outside = finished_run(tmp_path / "elsewhere")
    inside = finished_run(runs_dir())
    (runs_dir() / "status.json").write_text('{"state": "finished"}')  # the runs folder as a "run"
    path = crafted.format(runs=runs_dir(), name=outside.path.name)
    with pytest.raises(BinclsError, match="Refusing"):
        RunFolder(Path(path)).delete()
    assert (outside.path / "status.json").exists() and (inside.path / "status.json").exists()


# Uploaded names are never paths ------------------------------------------------------------------
HOSTILE_NAMES = [
    "../../evil.jpg",
    "/etc/passwd",
    "a/b/c.jpg",
    "..",
    "",
    ".",
    "a\x00b.jpg",
    "\x00",
    "x" * 5000 + ".jpg",
    "..\\..\\evil.png",
    "C:\\evil.png",
    "~/evil.png",
    "%2e%2e%2fevil.png",
    "evil.png\n",
    "nul.png",
    " ",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_safe_name_is_a_plain_base_name(name):
    out = safe_name(name)
    assert out and out not in (".", "..") and "/" not in out and "\\" not in out and "\x00" not in out
    assert not out.startswith(".") and len(out.encode()) <= 200
    assert Path(out).name == out


def test_hostile_upload_names_are_all_written_inside_the_session_folder(tmp_path):
    session = new_upload_session()
    files = [(n, PNG) for n in HOSTILE_NAMES] + [("dup.png", PNG)] * 3
    saved = save_uploads(session, "../../classes", files)
    assert saved.folder == session / "classes"
    assert len(saved.files) == len(files) and len({p.name.lower() for p in saved.files}) == len(files)
    assert {p for p in uploads_dir().rglob("*") if p.is_file()} == set(saved.files)
    assert all(p.parent == saved.folder and p.read_bytes() == PNG for p in saved.files)
    assert not any(tmp_path.rglob("evil*")) and not list(Path("/tmp").glob("evil*.png"))


@pytest.mark.parametrize("class_name", ["..", "../..", "/", "", "\x00"])
def test_a_hostile_class_name_stays_a_subfolder_of_the_session(class_name):
    session = new_upload_session()
    saved = save_uploads(session, class_name, [("a.png", PNG)])
    assert saved.folder.parent == session and saved.files[0].parent == saved.folder
