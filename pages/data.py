"""Data page: choose the two classes (a folder, two folders or uploads), check every file, split them."""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from bincls import BinclsError
from bincls.data import data_root as confinement
from bincls.data.folder_layout import resolve_layout
from bincls.data.images import is_junk_dir, load_rgb
from bincls.data.uploads import new_upload_session, save_uploads
from bincls.paths import SAMPLE_DATA, uploads_dir
from pages import common

common.require_app(__file__)

ss = st.session_state

# Counting in the folder browser goes by extension only: decoding is the scan's job.
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".mpo"}
COUNT_CAP = 1000  # images counted per subfolder before showing "1000+"
WALK_CAP = 5000  # directory entries looked at per subfolder before giving up counting
LIST_CAP = 300  # subfolders listed
# Imbalance rule: warn when the smaller class has fewer than 40% as many usable images as the larger.
IMBALANCE_RATIO = 0.4
CLASS_COLOURS = ("#1f77b4", "#ff7f0e")
THUMB = 96
GROUPS_SHOWN = 12  # duplicate groups shown with thumbnails, per kind
GROUP_COLUMNS = 3
GROUP_THUMBS = 3  # thumbnails per group
SCATTER_CAP = 5000  # points per class in the size scatter
# A browser cannot take a 100,000-row table: long tables show a page at a time, with a CSV of them all.
TABLE_ROWS = 200
SAMPLE_THUMBS = 12  # images per class in "Sample images", drawn with the split seed
LAYOUT_KINDS = {
    "root": "one folder with two class folders",
    "presplit": "a folder already split into train / val [/ test]",
    "two-folders": "two class folders",
}


# Folder browser helpers -------------------------------------------------------------------------
def _is_image_name(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def count_images(folder: str) -> tuple[int, bool]:
    """Image files below `folder` by extension, without decoding; (count, True when cut short)."""
    n = seen = 0
    stack = [folder]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for e in it:
                    seen += 1
                    if seen > WALK_CAP or n >= COUNT_CAP:
                        return n, True
                    try:
                        if e.is_dir(follow_symlinks=False):
                            if not is_junk_dir(e.name):
                                stack.append(e.path)
                        elif _is_image_name(e.name):
                            n += 1
                    except OSError:
                        continue
        except OSError:
            continue
    return n, False


@st.cache_data(ttl=30, show_spinner="Counting images...", max_entries=64)
def list_subfolders(folder: str) -> pd.DataFrame:
    """Visible subfolders of `folder` with their image counts ("1000+" when capped)."""
    rows = []
    try:
        entries = sorted(
            (e for e in os.scandir(folder)
             if e.is_dir(follow_symlinks=True) and not is_junk_dir(e.name) and confinement.allowed(e.path)),
            key=lambda e: e.name.lower(),
        )
    except OSError:
        entries = []
    for e in entries[:LIST_CAP]:
        n, capped = count_images(e.path)
        rows.append({"folder": e.name, "images": f"{n}+" if capped else str(n)})
    return pd.DataFrame(rows, columns=["folder", "images"])


# Actions (callbacks run before the page, so the sidebar shows the new data at once) ---------------
def _clean_path(text: str) -> str:
    """A path as typed or pasted: surrounding quotes and spaces removed (`confine` does the rest)."""
    return (text or "").strip().strip("'\"").strip()


def use_data(paths: list[str], what: str, confined: bool = True) -> None:
    """Switch to `paths` if they resolve to two classes; otherwise keep the current data and say why.

    `confined`: the paths came from the user, so they must stay inside BINCLS_DATA_ROOT when it is set
    (False only for the app's own folders: the sample and the uploads)."""
    paths = [_clean_path(p) for p in paths]
    if not all(paths):
        ss[common.DATA_MESSAGE] = ("error", "Give a folder path (it is empty).")
        return
    try:
        paths = [str(confinement.confine(p)) for p in paths] if confined else paths
        layout = resolve_layout(paths)
    except BinclsError as exc:
        ss[common.DATA_MESSAGE] = ("error", f"{exc} The data in use did not change.")
        return
    ss[common.DATA_PATHS] = paths
    ss[common.CLASS_NAMES] = None
    kind = LAYOUT_KINDS.get(layout.kind, layout.kind)
    ss[common.DATA_MESSAGE] = ("success", f"Now using {what}: {' vs '.join(layout.class_names)} ({kind}).")


def _use_typed_root() -> None:
    use_data([ss.get(common.DATA_ROOT_INPUT, "")], "the folder")


def _use_typed_pair() -> None:
    pair = [ss.get(common.DATA_CLASS_A_INPUT, ""), ss.get(common.DATA_CLASS_B_INPUT, "")]
    use_data(pair, "the two folders")


def _use_sample() -> None:
    use_data([str(SAMPLE_DATA)], "the bundled sample", confined=False)


def _browse_to(folder: str) -> None:
    try:
        ss[common.BROWSE_DIR] = str(confinement.confine(folder))
    except BinclsError as exc:
        ss[common.DATA_MESSAGE] = ("error", str(exc))
        return
    ss.pop(common.BROWSE_SELECTED, None)


def _selected() -> str:
    """The subfolder chosen in the browser, read when a button is clicked (not when it was drawn)."""
    return str(Path(ss[common.BROWSE_DIR]) / ss[common.BROWSE_SELECTED])


def _open_selected() -> None:
    _browse_to(_selected())


def _pick_selected(slot: str) -> None:
    _pick(slot, _selected())


def _use_selected() -> None:
    use_data([_selected()], "the subfolder")


def _pick(slot: str, folder: str) -> None:
    try:
        folder = str(confinement.confine(folder))
    except BinclsError as exc:
        ss[common.DATA_MESSAGE] = ("error", str(exc))
        return
    picks = dict(ss[common.BROWSE_PICKS])
    picks[slot] = folder
    ss[common.BROWSE_PICKS] = picks
    if picks["A"] and picks["B"]:
        use_data([picks["A"], picks["B"]], "the two picked folders")
    else:
        other = "B" if slot == "A" else "A"
        ss[common.DATA_MESSAGE] = ("info", f"Class {slot}: {folder}. Now pick class {other}.")


def _use_uploads() -> None:
    gen = ss[common.UPLOAD_GENERATION]
    names = [(ss.get(k) or "").strip() for k in common.UPLOAD_NAMES]
    files = [ss.get(f"{k}-{gen}") or [] for k in common.UPLOAD_FILES]
    if not all(files):
        ss[common.DATA_MESSAGE] = ("error", "Upload images (or a zip) for both classes first.")
        return
    if not all(names) or names[0].lower() == names[1].lower():
        ss[common.DATA_MESSAGE] = ("error", "Give the two uploaded classes two different names.")
        return
    session = new_upload_session()
    try:
        folders = [
            save_uploads(session, name, [(f.name, f.getvalue()) for f in fs]).folder
            for name, fs in zip(names, files)
        ]
    except BinclsError as exc:
        ss[common.DATA_MESSAGE] = ("error", str(exc))
        return
    ss[common.UPLOAD_GENERATION] = gen + 1  # fresh, empty uploaders: the files are saved now
    use_data([str(f) for f in folders], "the uploaded images", confined=False)


def _apply_split() -> None:
    val, test = ss[common.SPLIT_VAL_PCT] / 100, ss[common.SPLIT_TEST_PCT] / 100
    ss[common.SPLIT_RATIOS] = (round(1 - val - test, 4), val, test)
    ss[common.SPLIT_SEED] = int(ss[common.SPLIT_SEED_INPUT])


def _rename(names: list[str] | None) -> None:
    if names is None:
        ss[common.CLASS_NAMES] = None
        return
    try:
        resolve_layout(ss[common.DATA_PATHS], names)
    except BinclsError as exc:
        ss[common.DATA_MESSAGE] = ("error", str(exc))
        return
    ss[common.CLASS_NAMES] = [n.strip() for n in names]


def _init() -> None:
    ss.setdefault(common.BROWSE_PICKS, {"A": None, "B": None})
    ss.setdefault(common.UPLOAD_GENERATION, 0)
    t, v, te = ss[common.SPLIT_RATIOS]
    # Widget values are forgotten when the page is left; SPLIT_RATIOS is the truth they start from.
    ss.setdefault(common.SPLIT_VAL_PCT, int(round(v * 100)))
    ss.setdefault(common.SPLIT_TEST_PCT, int(round(te * 100)))
    ss.setdefault(common.SPLIT_SEED_INPUT, int(ss[common.SPLIT_SEED]))


# Small views -------------------------------------------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=512)
def thumbnail(path: str, mtime: float) -> np.ndarray | None:
    try:
        im = load_rgb(path, max_side=THUMB)
    except BinclsError:
        return None
    im.thumbnail((THUMB, THUMB))
    return np.asarray(im)


def _group(paths: list[str], conflict: bool, label_of: dict[str, str], roots: list[str]) -> None:
    """One group of identical files: a few thumbnails, what happens to each copy, their paths."""
    shown = paths[:GROUP_THUMBS]
    images, captions = [], []
    for i, p in enumerate(shown):
        try:
            t = thumbnail(p, os.path.getmtime(p))
        except OSError:
            t = None
        if t is not None:
            images.append(t)
            captions.append(label_of.get(p, "?") if conflict else ("kept" if i == 0 else "left out"))
    with st.container(border=True):
        classes = sorted({label_of.get(p, "?") for p in paths})
        title = " vs ".join(classes) if conflict else classes[0]
        st.markdown(f"**{title}** · {len(paths)} copies")
        if images:
            st.image(images, caption=captions, width=THUMB)
        more = f"  \n... and {len(paths) - len(shown)} more" if len(paths) > len(shown) else ""
        st.caption("  \n".join(f"`{_short(p, roots)}`" for p in shown) + more)


def _groups(groups: list[list[str]], conflict: bool, label_of: dict[str, str], roots: list[str]) -> None:
    cols = st.columns(GROUP_COLUMNS)
    for i, g in enumerate(groups[:GROUPS_SHOWN]):
        with cols[i % GROUP_COLUMNS]:
            _group(g, conflict, label_of, roots)


def _paged_table(items: Sequence, row: Callable, columns: list[str], key: str, file_name: str) -> None:
    """`items` as a table, TABLE_ROWS at a time; `row(item)` is only called for the rows shown (and
    for all of them when the CSV is downloaded)."""
    n = len(items)
    pages = max(1, -(-n // TABLE_ROWS))
    page = 1
    if pages > 1:
        if ss.get(key, 1) > pages:  # the data changed under a later page: a number_input above max fails
            ss[key] = pages
        page = st.number_input(f"Page (of {pages:,})", 1, pages, step=1, key=key, width=200)
    start = (page - 1) * TABLE_ROWS
    shown = items[start : start + TABLE_ROWS]
    st.dataframe(pd.DataFrame([row(i) for i in shown], columns=columns), hide_index=True, width="stretch",
                 height=min(38 + 35 * len(shown), 400))
    if pages > 1:
        st.caption(f"Showing rows {start + 1:,}–{start + len(shown):,} of {n:,}. The CSV has them all.")
        st.download_button(
            f"Download all {n:,} rows (CSV)", file_name=file_name, mime="text/csv", on_click="ignore",
            data=lambda: pd.DataFrame([row(i) for i in items], columns=columns).to_csv(index=False).encode(),
            icon=":material/download:", key=f"{key}-csv",
        )  # fmt: skip


def _sample_images(scan, names: list[str], seed: int) -> None:
    """A few usable images per class, drawn at random with `seed`: a look at the data, whatever its size."""
    usable = scan.usable
    for i, name in enumerate(names):
        recs = [r for r in usable if r.label == i]
        picked = sorted(random.Random(seed).sample(range(len(recs)), min(SAMPLE_THUMBS, len(recs))))
        images, captions = [], []
        for k in picked:
            try:
                t = thumbnail(recs[k].path, os.path.getmtime(recs[k].path))
            except OSError:
                t = None
            if t is not None:
                images.append(t)
                captions.append(os.path.basename(recs[k].path))
        st.markdown(f"**{name}**: {len(picked)} of {len(recs):,} usable images")
        if images:
            st.image(images, caption=captions, width=THUMB)


def _n(k: int, word: str) -> str:
    return f"{k} {word}" + ("" if k == 1 else "s")


def _short(path: str, roots: list[str]) -> str:
    for r in roots:
        if path.startswith(r.rstrip(os.sep) + os.sep):
            return os.path.relpath(path, r)
    return path


def _data_label(paths: list[str]) -> str:
    if paths == [str(SAMPLE_DATA)]:
        return "the bundled sample (ants vs bees)"
    up = str(uploads_dir())
    if all(p.startswith(up) for p in paths):
        return "uploaded images"
    return "one folder" if len(paths) == 1 else "two class folders"


def _message() -> None:
    msg = ss.pop(common.DATA_MESSAGE, None)
    if not msg:
        return
    kind, text = msg
    if kind == "error":
        common.show_error(text)
    elif kind == "success":
        st.success(text, icon=":material/check_circle:")
    else:
        st.info(text, icon=":material/info:")


def _fig_layout(fig: go.Figure, title: str, x: str, y: str, height: int = 340) -> go.Figure:
    fig.update_layout(
        title=title, xaxis_title=x, yaxis_title=y, height=height, margin=dict(l=10, r=10, t=50, b=10),
        legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1),
    )
    return fig


# Page --------------------------------------------------------------------------------------------
_init()
st.title("Data")
st.caption(
    "Point bincls at two classes of images. It only reads your folders: nothing in them is changed, "
    "moved or deleted."
)

# 1. Choose ---------------------------------------------------------------------------------------
st.subheader("1. Choose the images")
paths = [str(p) for p in ss[common.DATA_PATHS]]
with st.container(border=True):
    left, right = st.columns([5, 1], vertical_alignment="center")
    left.markdown(f"**In use:** {_data_label(paths)}")
    left.caption("  \n".join(f"`{p}`" for p in paths))
    right.button(
        "Use the sample", on_click=_use_sample, icon=":material/restart_alt:",
        disabled=paths == [str(SAMPLE_DATA)], help="Go back to the bundled ants vs bees sample.",
    )
with st.container():  # always present, so the tabs below keep their place (and the open tab) on reruns
    _message()

tab_path, tab_browse, tab_upload = st.tabs(["Type a path", "Browse folders", "Upload images"])

with tab_path:
    one, two = st.columns(2, gap="large")
    with one, st.form("data_root_form", border=False):
        st.markdown("**One folder** that holds two class folders, or train / val [/ test] folders")
        st.text_input(
            "Dataset folder", key=common.DATA_ROOT_INPUT, placeholder="/home/me/data/cats_vs_dogs",
            help="Two class subfolders (cats/, dogs/), or train/ and val/ [test/] each holding the same two.",
        )
        st.form_submit_button("Use this folder", on_click=_use_typed_root, type="primary")
    with two, st.form("data_pair_form", border=False):
        st.markdown("**Two class folders**, one per class")
        st.text_input("Class A folder", key=common.DATA_CLASS_A_INPUT, placeholder="/home/me/data/cats")
        st.text_input("Class B folder", key=common.DATA_CLASS_B_INPUT, placeholder="/home/me/data/dogs")
        st.form_submit_button("Use these two folders", on_click=_use_typed_pair, type="primary")

with tab_browse:
    here = Path(ss[common.BROWSE_DIR])
    if not here.is_dir() or not confinement.allowed(here):  # the browser never leaves BINCLS_DATA_ROOT
        here = confinement.browse_home()
        ss[common.BROWSE_DIR] = str(here)
    with st.container(horizontal=True, vertical_alignment="bottom"):
        st.text_input("Current folder", value=str(here), disabled=True, width=560)
        st.button("Up", icon=":material/arrow_upward:", on_click=_browse_to, args=(str(here.parent),),
                  disabled=here.parent == here or here == confinement.data_root(),
                  help="Go to the parent folder")
        st.button("Home", icon=":material/home:", on_click=_browse_to, args=(str(confinement.browse_home()),))
        st.button("Sample", icon=":material/pets:", on_click=_browse_to, args=(str(SAMPLE_DATA),),
                  help="Go to the bundled sample's folder", disabled=confinement.data_root() is not None)

    subs = list_subfolders(str(here))
    listing, actions = st.columns(2, gap="large")
    with listing:
        if subs.empty:
            st.info("No subfolders here. This folder itself can be a class folder.",
                    icon=":material/folder_off:")
        else:
            st.dataframe(
                subs, hide_index=True, width="stretch", height=min(38 + 35 * len(subs), 320),
                column_config={
                    "folder": st.column_config.TextColumn("Subfolder"),
                    "images": st.column_config.TextColumn("Images", help="Files with image extensions"),
                },
            )
            if len(subs) >= LIST_CAP:
                st.caption(f"Only the first {LIST_CAP} subfolders are listed.")
    with actions:
        image_counts = dict(zip(subs["folder"], subs["images"]))
        if image_counts:
            if ss.get(common.BROWSE_SELECTED) not in image_counts:
                ss[common.BROWSE_SELECTED] = next(iter(image_counts))
            st.selectbox(
                "Subfolder", list(image_counts), key=common.BROWSE_SELECTED,
                format_func=lambda n, c=image_counts: f"{n}  ({c.get(n, '?')} images)",
            )
            with st.container(horizontal=True):
                st.button("Open", icon=":material/folder_open:", on_click=_open_selected)
                for slot in "AB":
                    st.button(f"As class {slot}", on_click=_pick_selected, args=(slot,),
                              help=f"Use this subfolder as class {slot}")
                st.button("As dataset", on_click=_use_selected,
                          help="Use this subfolder as the dataset folder (it holds the two classes)")
        st.markdown(f"**This folder** ({here.name or here})")
        with st.container(horizontal=True):
            st.button("Use as dataset", on_click=use_data, args=([str(here)], "this folder"), type="primary",
                      help="This folder holds two class folders, or train / val [/ test] folders.")
            st.button("Use as class A", on_click=_pick, args=("A", str(here)))
            st.button("Use as class B", on_click=_pick, args=("B", str(here)))
        picks = ss[common.BROWSE_PICKS]
        st.caption(
            f"Class A: `{picks['A'] or 'not picked'}`  \nClass B: `{picks['B'] or 'not picked'}`  \n"
            "When both are picked they become the two classes."
        )

with tab_upload:
    st.caption(
        f"Uploaded images are copied into bincls' own uploads folder (`{uploads_dir()}`), one new folder "
        "per upload; those folders then become the two classes. A zip is unpacked there (links, paths "
        "leaving the folder and zip bombs are refused)."
    )
    gen = ss[common.UPLOAD_GENERATION]
    cols = st.columns(2, gap="large")
    for i, col in enumerate(cols):
        with col:
            letter = "AB"[i]
            st.text_input(f"Class {letter} name", key=common.UPLOAD_NAMES[i], value=None,
                          placeholder=f"e.g. {('cats', 'dogs')[i]}")
            st.file_uploader(
                f"Images or a .zip for class {letter}", accept_multiple_files=True,
                type=sorted(e.lstrip(".") for e in IMAGE_EXTENSIONS) + ["zip"],
                key=f"{common.UPLOAD_FILES[i]}-{gen}",
            )
    st.button("Use the uploaded images", on_click=_use_uploads, type="primary", icon=":material/upload:")

# 2. Check ----------------------------------------------------------------------------------------
st.subheader("2. Check the images")
try:
    scan = common.current_scan()
except BinclsError as exc:
    common.show_error(exc)
    st.stop()

names = scan.class_names
found, usable = scan.class_counts(), scan.class_counts(usable_only=True)
st.caption(
    f"Layout: {LAYOUT_KINDS.get(scan.layout.kind, scan.layout.kind)}. "
    f"Class 0 is **{names[0]}**, class 1 is **{names[1]}**."
)
for note in scan.notes:
    st.info(note, icon=":material/info:")

m = st.columns([3, 3, 2, 2, 2])
for i in range(2):
    m[i].metric(
        names[i], f"{usable[i]} / {found[i]}", border=True,
        help=f"Class {i}: usable / found images. Found: valid image files. Usable: what is left after "
        "dropping extra copies and label conflicts.",
    )
m[2].metric("Skipped files", len(scan.skipped), border=True, help="Not images, broken, hidden or system.")
m[3].metric("Duplicates", len(scan.duplicates), border=True, help="Groups of byte-identical files.")
m[4].metric("Label conflicts", len(scan.conflicts), border=True, help="The same image in both classes.")

st.caption("Per class: usable / found images.")
with st.expander("Rename the classes"):
    with st.form("rename_form", border=False):
        r1, r2 = st.columns(2)
        new_a = r1.text_input("Name of class 0", value=names[0])
        new_b = r2.text_input("Name of class 1", value=names[1])
        if st.form_submit_button("Rename"):
            _rename([new_a, new_b])
            st.rerun()
    st.button("Back to the folder names", on_click=_rename, args=(None,),
              disabled=ss[common.CLASS_NAMES] is None)

label_of = {r.path: names[r.label] for r in scan.images}
# Paths are shown from the dataset folder (or from the class folders' parents), so the class shows.
roots = [str(Path(r).parent) if scan.layout.kind == "two-folders" else r for r in scan.layout.roots]
t_bal, t_size, t_skip, t_dup, t_mode, t_sample = st.tabs([
    "Class balance", "Image sizes", f"Skipped files ({len(scan.skipped):,})",
    f"Duplicates & conflicts ({len(scan.duplicates):,})", "Colour modes & formats", "Sample images",
])

with t_bal:
    fig = go.Figure()
    fig.add_bar(x=names, y=found, name="found", marker_color="#c7c7c7", text=found, textposition="outside")
    fig.add_bar(x=names, y=usable, name="usable", marker_color=CLASS_COLOURS[0], text=usable,
                textposition="outside")
    fig.update_layout(barmode="group", yaxis_range=[0, max(found + [1]) * 1.15])
    st.plotly_chart(_fig_layout(fig, "Images per class", "Class", "Images"), width="stretch")
    small, big = sorted(usable)
    st.caption(f"Rule: a warning appears when the smaller class has fewer than {IMBALANCE_RATIO:.0%} as many "
               "usable images as the larger.")
    if big and small < IMBALANCE_RATIO * big:
        lo = names[usable.index(small)]
        st.warning(
            f"The classes are imbalanced: {lo} has {small} usable images, {small / big:.0%} of the other "
            f"class's {big}. Training weights the loss by the class balance, but more {lo} images help most.",
            icon=":material/balance:",
        )

with t_size:
    df = pd.DataFrame([(r.width, r.height, names[r.label], os.path.basename(r.path)) for r in scan.images],
                      columns=["width", "height", "class", "file"])
    fig = go.Figure()
    for i, name in enumerate(names):
        part = df[df["class"] == name]
        if len(part) > SCATTER_CAP:
            part = part.sample(SCATTER_CAP, random_state=0)
        fig.add_scatter(
            x=part["width"], y=part["height"], mode="markers", name=name, text=part["file"],
            marker=dict(color=CLASS_COLOURS[i], size=7, opacity=0.7),
            hovertemplate="%{text}<br>%{x} x %{y} px<extra>" + name + "</extra>",
        )
    fig = _fig_layout(fig, "Image size per file", "Width (px)", "Height (px)", 420)
    st.plotly_chart(fig, width="stretch")
    if len(df):
        st.caption(
            f"Width {df.width.min()}..{df.width.max()} px, height {df.height.min()}..{df.height.max()} px. "
            "Every image is resized to the model's square input size; very different shapes get squashed."
        )

with t_skip:
    if scan.skipped:
        _paged_table(scan.skipped, lambda s: (_short(s.path, roots), s.reason), ["file", "reason"],
                     common.DATA_SKIPPED_PAGE, "skipped.csv")
    else:
        st.success("Every file is a usable image.", icon=":material/check_circle:")

with t_dup:
    conflict_set = {p for g in scan.conflicts for p in g}
    within = [g for g in scan.duplicates if g[0] not in conflict_set]
    if not scan.duplicates:
        st.success("No duplicate files.", icon=":material/check_circle:")
    if scan.conflicts:
        st.markdown(f"**Label conflicts** ({len(scan.conflicts)}): the same image in both classes. "
                    "Every copy is left out of training.")
        _groups(scan.conflicts, True, label_of, roots)
    if within:
        st.markdown(f"**Duplicates within a class** ({_n(len(within), 'group')}): one copy is kept, the "
                    "others are left out so they cannot end up in both train and test.")
        _groups(within, False, label_of, roots)
    if len(scan.conflicts) > GROUPS_SHOWN or len(within) > GROUPS_SHOWN:
        st.caption(
            f"Showing the first {GROUPS_SHOWN} groups of each kind ({len(scan.conflicts):,} conflict and "
            f"{len(within):,} duplicate groups in all); the list below has every file they leave out."
        )
    if scan.excluded:
        with st.expander(f"Left out of training ({len(scan.excluded):,} files)"):
            _paged_table(sorted(scan.excluded.items()), lambda pr: (_short(pr[0], roots), pr[1]),
                         ["file", "reason"], common.DATA_EXCLUDED_PAGE, "left_out.csv")

with t_mode:
    c1, c2, c3 = st.columns(3, gap="large")
    c1.markdown("**Colour modes** (as stored)")
    c1.dataframe(pd.DataFrame(sorted(scan.mode_counts().items()), columns=["mode", "images"]),
                 hide_index=True, width="stretch")
    c2.markdown("**File formats**")
    c2.dataframe(pd.DataFrame(sorted(scan.format_counts().items()), columns=["format", "images"]),
                 hide_index=True, width="stretch")
    c3.markdown("**Channel statistics** (RGB, 0..1)")
    c3.dataframe(
        pd.DataFrame({"mean": scan.channel_mean, "std": scan.channel_std}, index=["R", "G", "B"]).round(3),
        width="stretch",
    )
    st.caption("Every image is converted to 8-bit RGB the same way for training and prediction "
               "(transparency on white, 16-bit scaled, EXIF rotation applied).")

with t_sample:
    st.caption("Usable images picked at random with the split's seed (change it in 3. below for others).")
    _sample_images(scan, names, int(ss[common.SPLIT_SEED]))

# 3. Split ----------------------------------------------------------------------------------------
st.subheader("3. Split into train, validation and test")
if scan.layout.presplit:
    has_val = any(s == "val" for c in scan.layout.classes for _, s in c.folders)
    st.info(
        "This folder is already split into train / val [/ test] folders, and that split is used as it is: "
        "the shares below are ignored"
        + ("." if has_val else ", except validation's: it is drawn from train (there is no val folder)."),
        icon=":material/call_split:",
    )
s1, s2, s3 = st.columns([2, 2, 1], gap="large")
s1.slider("Validation share (%)", 5, 45, step=5, key=common.SPLIT_VAL_PCT, on_change=_apply_split)
s2.slider("Test share (%)", 0, 45, step=5, key=common.SPLIT_TEST_PCT, on_change=_apply_split)
s3.number_input("Seed", 0, 2**31 - 1, step=1, key=common.SPLIT_SEED_INPUT, on_change=_apply_split,
                help="The same seed gives the same split.")
tr, va, te = ss[common.SPLIT_RATIOS]
st.caption(f"Train gets the rest: {tr:.0%}. Each class is split with the same shares (stratified), by file.")

try:
    data = common.current_data()
except BinclsError as exc:
    common.show_error(exc)
    st.stop()

counts = data.counts()
table = pd.DataFrame(counts).T[names]
table["total"] = table.sum(axis=1)
table.loc["total"] = table.sum()
table.index.name = "split"
c_table, c_dl = st.columns([3, 2], gap="large", vertical_alignment="bottom")
c_table.dataframe(table, width="stretch")
c_dl.download_button(
    "Download the split table (CSV)", data.split.to_csv(index=False).encode(), file_name="split.csv",
    mime="text/csv", icon=":material/download:", on_click="ignore",
    help="path, class, label, split for every usable image; a run saves the same table.",
)
