"""The Data page's actions: switch the data to what was typed, browsed, picked or uploaded; rename the
classes; set the split. Button callbacks run before the page, so the sidebar shows the new data at once;
each says what it did with a message the page shows once."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from bincls import BinclsError
from bincls.data import data_root
from bincls.data.captures import count_captures, move_captures
from bincls.data.folder_layout import resolve_layout
from bincls.data.uploads import new_upload_session, safe_name, save_uploads
from bincls.paths import SAMPLE_DATA
from pages.support.shared import keys
from pages.support.shared.formatting import as_text
from pages.support.shared.messages import flash
from pages.support.shared.state import data_changed
from pages.support.shared.webcam import forget

ss = st.session_state
LAYOUT_KINDS = {
    "root": "one folder with two class folders",
    "presplit": "a folder already split into train / val [/ test]",
    "two-folders": "two class folders",
}


def init() -> None:
    ss.setdefault(keys.BROWSE_PICKS, {"A": None, "B": None})
    ss.setdefault(keys.UPLOAD_GENERATION, 0)
    t, v, te = ss[keys.SPLIT_RATIOS]
    # Widget values are forgotten when the page is left; SPLIT_RATIOS is the truth they start from.
    ss.setdefault(keys.SPLIT_VAL_PCT, int(round(v * 100)))
    ss.setdefault(keys.SPLIT_TEST_PCT, int(round(te * 100)))
    ss.setdefault(keys.SPLIT_SEED_INPUT, int(ss[keys.SPLIT_SEED]))


def _say(kind: str, text: str) -> None:
    """A message about the last choice; the paths and class names in it read as typed, never as markdown."""
    flash(keys.DATA_MESSAGE, kind, as_text(text))


def _clean_path(text: str) -> str:
    """A path as typed or pasted: surrounding quotes and spaces removed (`confine` does the rest)."""
    return (text or "").strip().strip("'\"").strip()


def use_data(paths: list[str], what: str, confined: bool = True) -> None:
    """Switch to `paths` if they resolve to two classes; otherwise keep the current data and say why.

    `confined`: the paths came from the user, so they must stay inside BINCLS_DATA_ROOT when it is set
    (False only for the app's own folders: the sample and the uploads)."""
    paths = [_clean_path(p) for p in paths]
    if not all(paths):
        _say("error", "Give a folder path (it is empty).")
        return
    try:
        paths = [str(data_root.confine(p)) for p in paths] if confined else paths
        layout = resolve_layout(paths)
    except BinclsError as exc:
        _say("error", f"{exc} The data in use did not change.")
        return
    if paths != ss[keys.DATA_PATHS]:
        data_changed()
    ss[keys.DATA_PATHS] = paths
    ss[keys.CLASS_NAMES] = None
    _show_in_fields(paths if confined else [])
    kind = LAYOUT_KINDS.get(layout.kind, layout.kind)
    _say("success", f"Now using {what}: {' vs '.join(layout.class_names)} ({kind}).")


def _show_in_fields(paths: list[str]) -> None:
    """The "Type a path" fields show the data in use (a stale path left in them would mislead): the root
    in "Dataset folder", two class folders in "Class A/B"; empty for the sample and uploads."""
    one, two = (paths, ["", ""]) if len(paths) == 1 else ([""], paths or ["", ""])
    ss[keys.DATA_ROOT_INPUT] = one[0]
    ss[keys.DATA_CLASS_A_INPUT], ss[keys.DATA_CLASS_B_INPUT] = two


def use_typed_root() -> None:
    use_data([ss.get(keys.DATA_ROOT_INPUT, "")], "the folder")
    _browse_beside()


def use_typed_pair() -> None:
    use_data([ss.get(keys.DATA_CLASS_A_INPUT, ""), ss.get(keys.DATA_CLASS_B_INPUT, "")], "the two folders")
    _browse_beside()


def _browse_beside() -> None:
    """After a typed path, the folder browser opens beside the data in use (not where it last was)."""
    parent = Path(ss[keys.DATA_PATHS][0]).parent
    if ss[keys.DATA_PATHS] != [str(SAMPLE_DATA)] and parent.is_dir() and data_root.allowed(parent):
        ss[keys.BROWSE_DIR] = str(parent)


def use_sample() -> None:
    use_data([str(SAMPLE_DATA)], "the bundled sample", confined=False)


def browse_to(folder: str) -> None:
    try:
        ss[keys.BROWSE_DIR] = str(data_root.confine(folder))
    except BinclsError as exc:
        _say("error", str(exc))
        return
    ss.pop(keys.BROWSE_SELECTED, None)


def _selected() -> str:
    """The subfolder chosen in the browser, read when a button is clicked (not when it was drawn)."""
    return str(Path(ss[keys.BROWSE_DIR]) / ss[keys.BROWSE_SELECTED])


def open_selected() -> None:
    browse_to(_selected())


def pick_selected(slot: str) -> None:
    pick(slot, _selected())


def use_selected() -> None:
    use_data([_selected()], "the subfolder")


def pick(slot: str, folder: str) -> None:
    """Take `folder` as class `slot` (A or B); once both are picked they become the data."""
    try:
        folder = str(data_root.confine(folder))
    except BinclsError as exc:
        _say("error", str(exc))
        return
    picks = dict(ss[keys.BROWSE_PICKS])
    picks[slot] = folder
    ss[keys.BROWSE_PICKS] = picks
    if picks["A"] and picks["B"]:
        use_data([picks["A"], picks["B"]], "the two picked folders")
    else:
        other = "B" if slot == "A" else "A"
        _say("info", f"Class {slot}: {folder}. Now pick class {other}.")


WEBCAM_KEYS = ("upload_A", "upload_B")  # the Data page's two cameras (`webcam_capture` keys)


def _photos_folder(i: int) -> Path | None:
    """Where class i's webcam photos are until they are used (see `photo_folder`); None if nowhere yet."""
    name = (ss.get(keys.UPLOAD_NAMES[i]) or "").strip()
    session = ss.get(keys.UPLOAD_PHOTOS)
    return Path(session) / safe_name(name, default="class") if name and session else None


def photo_folder(i: int) -> Path | None:
    """The folder class i's webcam photos go into: named as the class, in an uploads session kept for the
    photos until "Use the uploaded images" (made now if there is none). None while the class has no name."""
    if not (ss.get(keys.UPLOAD_NAMES[i]) or "").strip():
        return None
    if not ss.get(keys.UPLOAD_PHOTOS) or not Path(ss[keys.UPLOAD_PHOTOS]).is_dir():
        ss[keys.UPLOAD_PHOTOS] = str(new_upload_session())
    return _photos_folder(i)


def use_uploads() -> None:
    gen = ss[keys.UPLOAD_GENERATION]
    names = [(ss.get(k) or "").strip() for k in keys.UPLOAD_NAMES]
    files = [ss.get(f"{k}-{gen}") or [] for k in keys.UPLOAD_FILES]
    photos = [_photos_folder(i) for i in range(2)]
    if not all(fs or (p and count_captures(p)) for fs, p in zip(files, photos)):
        _say("error", "Upload images (or a zip), or take webcam photos, for both classes first.")
        return
    if not all(names) or names[0].lower() == names[1].lower():
        _say("error", "Give the two uploaded classes two different names.")
        return
    session = new_upload_session()
    try:
        folders = [
            save_uploads(session, name, [(f.name, f.getvalue()) for f in fs]).folder
            for name, fs in zip(names, files)
        ]
        # The uploads are saved whole (or not at all) before the photos join them: a refused zip never
        # costs a photo.
        for source, folder in zip(photos, folders):
            if source:
                move_captures(source, folder)
    except BinclsError as exc:
        _say("error", str(exc))
        return
    _photos_used()
    ss[keys.UPLOAD_GENERATION] = gen + 1  # fresh, empty uploaders: the files are saved now
    use_data([str(f) for f in folders], "the uploaded images", confined=False)


def _photos_used() -> None:
    """The photos are part of the data now: the next photos start a new session, and undo forgets these."""
    pending = ss.pop(keys.UPLOAD_PHOTOS, None)
    if pending:
        try:
            Path(pending).rmdir()  # only when empty: photos of a class renamed since are left where they are
        except OSError:
            pass
    for key in WEBCAM_KEYS:
        forget(key)


def apply_split() -> None:
    val, test = ss[keys.SPLIT_VAL_PCT] / 100, ss[keys.SPLIT_TEST_PCT] / 100
    ss[keys.SPLIT_RATIOS] = (round(1 - val - test, 4), val, test)
    ss[keys.SPLIT_SEED] = int(ss[keys.SPLIT_SEED_INPUT])


def rename(names: list[str] | None) -> None:
    """Rename the two classes (None: back to the folder names)."""
    if names is None:
        ss[keys.CLASS_NAMES] = None
        return
    try:
        resolve_layout(ss[keys.DATA_PATHS], names)
    except BinclsError as exc:
        _say("error", str(exc))
        return
    ss[keys.CLASS_NAMES] = [n.strip() for n in names]
