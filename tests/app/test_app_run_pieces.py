"""What the pages show about one run, through AppTest (issue 17): Download model with a Python snippet that
works (item 6), Resume that says why it cannot start instead of failing (item 7), engine messages in the
pages' words (item 7), and the run Evaluate and Predict open on (item 5)."""

from __future__ import annotations

import shutil

from appsupport import button, open_page
from shell import run_pasted

from bincls.paths import SAMPLE_DATA, runs_dir
from bincls.runs.folder import RunFolder
from bincls.runs.summary import summarize
from pages.support.shared import run_pieces
from pages.support.shared.commands import interpreter
from pages.support.shared.keys import CURRENT_RUN, RUNS_TABLE
from pages.support.shared.messages import page_words
from pages.support.shared.widgets import best_run_id


def _downloads(at) -> list[str]:
    return [e.proto.label for e in at.get("download_button")]


def test_runs_and_train_offer_the_checkpoint_with_a_snippet_that_runs(sample_run):
    at = open_page("runs")
    assert not _downloads(at), "no download before a run is ticked"
    at.session_state[RUNS_TABLE] = {"selection": {"rows": [0], "columns": []}}
    at.run()
    assert [d.startswith("Download model (") and d.endswith(" MB)") for d in _downloads(at)] == [True]

    at = open_page("train")  # the finished run's panel
    assert any(d.startswith("Download model (") for d in _downloads(at))

    # The snippet and the commands beside it, pasted as a user would: a plain shell in the project folder.
    codes = {c.language: c.value for c in at.code if c.language == "python"}
    snippet = codes["python"]
    name = f"{sample_run.id}-best.pt"
    assert snippet.strip() == run_pieces.usage_snippet(sample_run, sample_run.best_checkpoint, name).strip()
    pasted = next(c.value for c in at.code if c.value.startswith(f"{interpreter()} - <<'EOF'"))
    assert snippet.strip() in pasted
    label, probability = run_pasted(pasted).stdout.split()
    assert label in ("ants", "bees") and 0.0 <= float(probability) <= 1.0
    predict = next(c.value for c in at.code if f"{interpreter()} -m bincls predict " in c.value)
    assert run_pasted(predict).stdout.split("\t")[1] in ("ants", "bees")


def test_resume_says_why_it_cannot_start_when_the_imagenet_weights_it_needs_are_gone(sample_run):
    """A run that saved no checkpoint would start over from ImageNet weights, which are not here (the
    tests' empty torch hub cache): the page says so instead of offering a Resume that fails."""
    run = sample_run
    run.write_config({**run.config(), "model": "mobilenet_v2", "weights": "imagenet", "epochs": 5})
    for ckpt in (run.best_checkpoint, run.last_checkpoint):
        ckpt.unlink(missing_ok=True)
    run.set_status(state="stopped")
    at = open_page("train")
    at.session_state[CURRENT_RUN] = run.id
    at.run()
    notes = [i.value for i in at.info]
    assert any("Resume is not possible here" in n and "ImageNet weights" in n for n in notes), notes
    assert not [b for b in at.button if b.label == "Resume"]
    assert "--" not in " ".join(notes)


def test_with_its_last_checkpoint_a_stopped_run_resumes_without_its_first_weights(sample_run):
    run = sample_run
    run.write_config({**run.config(), "weights": "/gone/weights.pth", "epochs": 5})
    run.set_status(state="stopped")
    assert run.last_checkpoint.is_file()
    at = open_page("train")
    at.session_state[CURRENT_RUN] = run.id
    at.run()
    assert button(at, "Resume") is not None


def test_engine_messages_name_the_pages_settings_not_flags():
    text = ("Preset fast fine-tunes pretrained weights, and there are none here for mobilenet_v2. Use preset "
            "scratch, or give a local weights file with --weights FILE (the app: Weights, Local file). "
            "Lower --img-size or --batch-size.")  # fmt: skip
    said = page_words(text)
    assert "--" not in said and "the app:" not in said
    assert "Choose the From scratch recipe" in said and "Weights: Local file (under All settings)" in said
    assert "Lower Image size or Batch size." in said


def test_evaluate_opens_on_the_best_finished_run_of_the_current_dataset(sample_run, tmp_path):
    """Of the current dataset first (a better run of other data does not count), a run that learned nothing
    last, then the best validation accuracy."""
    def copy(suffix: str, data: str, accuracy: float, learned_nothing: bool = False) -> RunFolder:
        run = RunFolder(shutil.copytree(sample_run.path, runs_dir() / f"{sample_run.id}-{suffix}"))
        run.write_config({**run.config(), "data": [data]})
        epoch = {"val_auroc": 0.5 if learned_nothing else 0.9, "val_p_std": 0.2,
                 "val_confusion_matrix": [[50, 0], [50, 0]]}  # fmt: skip
        run.set_status(state="finished", best_val_accuracy=accuracy, best_metrics=None,
                       last_epoch_metrics=epoch, beat_chance_epoch=None if learned_nothing else 1)
        return run

    other = copy("other", str(tmp_path / "other-data"), 0.99)
    good = copy("good", str(SAMPLE_DATA), 0.8)
    copy("worse", str(SAMPLE_DATA), 0.7)
    nothing = copy("nothing", str(SAMPLE_DATA), 0.9, learned_nothing=True)
    assert summarize(nothing).learned_nothing and not summarize(good).learned_nothing
    candidates = [RunFolder(p) for p in runs_dir().iterdir()]
    assert best_run_id(candidates, [str(SAMPLE_DATA)]) == good.id
    assert best_run_id(candidates, [str(tmp_path / "other-data")]) == other.id
    assert best_run_id(candidates, ["/no/such/data"]) == other.id  # no run of it: the best of any
