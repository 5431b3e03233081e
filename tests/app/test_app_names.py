"""User-supplied names are text, never markdown (issue 24, class 6): a run, class folder and file named like
markdown links and images show as those characters on every page, through AppTest. (That the browser
then fetches nothing is tests/e2e/test_e2e_names.py.)"""

from __future__ import annotations

import re
import shutil

import pytest
from appsupport import open_page, shown
from google.protobuf.json_format import MessageToDict

from bincls.paths import SAMPLE_DATA, runs_dir
from bincls.training.config import TrainConfig
from bincls.training.loop import train
from pages.support.shared import keys
from pages.support.shared.formatting import as_text, chart_text, code, md

RUN_NAME = "![x](http://127.0.0.1:9/t.png) [link](http://x)"
CLASS = "![c](https:127.0.0.1:9) [l](https:x)"  # a folder name cannot hold "/"
FILE = "![f](https:127.0.0.1:9) *f*.jpg"
RAW = (RUN_NAME, CLASS, FILE, "](http://127.0.0.1:9", "](https:127.0.0.1:9", "](http://x", "](https:x")
# Fields of an element's proto that Streamlit renders as markdown (labels, help, options of radios and
# segmented controls, image captions, progress texts, alert and markdown bodies).
MARKDOWN_FIELDS = {"body", "label", "help", "caption", "text"}
PLAIN_TYPES = {"code", "selectbox", "multiselect", "text_input", "plotly_chart", "arrow_data_frame", "text"}
_CODE_SPAN = re.compile(r"(`+)(?!`)(.+?)(?<!`)\1(?!`)")


def hostile_dataset(base):
    """Two class folders: one named like markdown (with a file named so too), and bees. Twelve ants: the Data
    page's sample images show them all."""
    root = base / "data"
    ants, bees = root / CLASS, root / "bees"
    ants.mkdir(parents=True)
    for i, src in enumerate(sorted((SAMPLE_DATA / "ants").iterdir())[:12]):
        shutil.copy(src, ants / (FILE if i == 0 else src.name))
    shutil.copytree(SAMPLE_DATA / "bees", bees)
    return root


@pytest.fixture(scope="module")
def hostile_src(tmp_path_factory):
    base = tmp_path_factory.mktemp("hostile-names")
    root = hostile_dataset(base)
    runs = base / "runs"
    run = train(TrainConfig(data=[str(root)], epochs=1, img_size=32, workers=0, name=RUN_NAME,
                            split=[0.5, 0.25, 0.25]), runs_dir=runs).run  # fmt: skip
    return root, run.path


@pytest.fixture
def hostile(hostile_src):
    root, run_path = hostile_src
    shutil.copytree(run_path, runs_dir() / run_path.name)
    return root, run_path.name


def markdown_texts(at) -> list[str]:
    """Every string the page renders as markdown, code spans taken out (they show their text as it is)."""
    out: list[str] = []

    def collect(value, key=None, radio=False):
        if isinstance(value, dict):
            for k, v in value.items():
                collect(v, k, radio)
        elif isinstance(value, list):
            for v in value:
                collect(v, key, radio)
        elif isinstance(value, str) and (key in MARKDOWN_FIELDS or (radio and key == "options")):
            out.append(_CODE_SPAN.sub("", value))

    def walk(node):
        proto = getattr(node, "proto", None)
        kind = getattr(node, "type", "")
        if proto is not None and kind not in PLAIN_TYPES:
            collect(MessageToDict(proto, preserving_proto_field_name=True),
                    radio=kind in ("radio", "button_group"))  # fmt: skip
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return out


def assert_names_are_text(at, *expected: str) -> None:
    assert not at.exception, [e.value for e in at.exception]
    texts = markdown_texts(at)
    leaks = [t for t in texts if any(raw in t for raw in RAW)]
    assert not leaks, leaks
    every = " ".join(shown(t) for t in texts)
    for name in expected:  # and the names are there, to read
        assert name in every, name


def test_markdown_in_names_is_escaped_to_read_as_itself():
    for name in (RUN_NAME, CLASS, FILE, "a\nb", "$x$ :red[y] <b>z</b> www.example.com"):
        assert not any(raw in md(name) for raw in ("](", "![", "$x$", ":red[", "www.")), md(name)
        assert shown(md(name)) == name.replace("\n", " ")
    assert code("a`b") == "``a`b``" and as_text("`--weights FILE` for ![x](y)") == (
        r"`--weights FILE` for \!\[x\]\(y\)")  # fmt: skip
    assert chart_text("<a href='x'>y</a> & z") == "&lt;a href='x'&gt;y&lt;/a&gt; &amp; z"


def test_the_data_preview_and_train_pages_show_the_names_as_text(hostile):
    root, run_id = hostile
    state = {keys.DATA_PATHS: [str(root)], keys.CURRENT_RUN: run_id}
    for page in ("data", "preview", "train"):
        at = open_page(page, state=state)
        assert_names_are_text(at, CLASS, *((RUN_NAME,) if page == "train" else ()))
    at = open_page("data", state=state)
    assert any(FILE in shown(c) for im in at.image for c in im.captions), "the sample images name the file"


def test_evaluate_runs_and_predict_show_the_names_as_text(hostile):
    root, run_id = hostile
    state = {keys.DATA_PATHS: [str(root)], keys.CURRENT_RUN: run_id, keys.EVAL_CELL: (CLASS, CLASS)}
    at = open_page("evaluate", state=state)
    assert_names_are_text(at, CLASS)
    assert any(h.value.startswith(f"True {md(CLASS)}, predicted {md(CLASS)}") for h in at.subheader)

    at = open_page("runs", state=state)
    at.session_state[keys.RUNS_TABLE] = {"selection": {"rows": [0], "columns": []}}
    at.run()
    assert_names_are_text(at, RUN_NAME)

    at = open_page("predict", state=state)
    ant = next((root / CLASS).iterdir()).read_bytes()
    files = [(FILE, ant, "image/jpeg"), ("[bad](https:127.0.0.1:9).jpg", b"not an image", "image/jpeg")]
    at.file_uploader(key=keys.PREDICT_UPLOADS).set_value(files).run()
    assert_names_are_text(at, CLASS, FILE, "[bad](https:127.0.0.1:9).jpg")
