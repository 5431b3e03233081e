"""Data page: choose the two classes (a folder, two folders or uploads), check every file, split them."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from bincls.data.browse import IMAGE_EXTENSIONS
from bincls.paths import SAMPLE_DATA, uploads_dir
from pages.support.data import audit_review, choice, report
from pages.support.data.folder_browser import folder_browser
from pages.support.shared import keys, loaders
from pages.support.shared.formatting import as_text, code, md
from pages.support.shared.messages import show_flashed, stop_on_error
from pages.support.shared.state import require_app
from pages.support.shared.webcam import webcam_capture

require_app(__file__)

ss = st.session_state


def data_label(paths: list[str]) -> str:
    if paths == [str(SAMPLE_DATA)]:
        return "the bundled sample (ants vs bees)"
    up = str(uploads_dir())
    if all(p.startswith(up) for p in paths):
        return "uploaded images"
    return "one folder" if len(paths) == 1 else "two class folders"


choice.init()
st.title("Data")
st.caption(
    "Point bincls at two classes of images. It only reads your folders: nothing in them is changed, "
    "moved or deleted."
)

# 1. Choose ---------------------------------------------------------------------------------------------
st.subheader("1. Choose the images")
paths = [str(p) for p in ss[keys.DATA_PATHS]]
with st.container(border=True):
    left, right = st.columns([5, 1], vertical_alignment="center")
    left.markdown(f"**In use:** {data_label(paths)}")
    left.caption("  \n".join(code(p) for p in paths))
    right.button(
        "Use the sample", on_click=choice.use_sample, icon=":material/restart_alt:",
        disabled=paths == [str(SAMPLE_DATA)], help="Go back to the bundled ants vs bees sample.",
    )  # fmt: skip
with st.container():  # always present, so the tabs below keep their place (and the open tab) on reruns
    show_flashed(keys.DATA_MESSAGE)

tab_path, tab_browse, tab_upload = st.tabs(["Type a path", "Browse folders", "Upload images"])

with tab_path:
    one, two = st.columns(2, gap="large")
    with one, st.form("data_root_form", border=False):
        st.markdown("**One folder** that holds two class folders, or train / val [/ test] folders")
        st.text_input(
            "Dataset folder", key=keys.DATA_ROOT_INPUT, placeholder="/home/me/data/cats_vs_dogs",
            help="Two class subfolders (cats/, dogs/), or train/ and val/ [test/] each holding the same two.",
        )  # fmt: skip
        st.form_submit_button("Use this folder", on_click=choice.use_typed_root, type="primary")
    with two, st.form("data_pair_form", border=False):
        st.markdown("**Two class folders**, one per class")
        st.text_input("Class A folder", key=keys.DATA_CLASS_A_INPUT, placeholder="/home/me/data/cats")
        st.text_input("Class B folder", key=keys.DATA_CLASS_B_INPUT, placeholder="/home/me/data/dogs")
        st.form_submit_button("Use these two folders", on_click=choice.use_typed_pair, type="primary")

with tab_browse:
    folder_browser()

with tab_upload:
    st.caption(
        f"Uploaded images are copied into bincls' own uploads folder (`{uploads_dir()}`), one new folder "
        "per upload; those folders then become the two classes. A zip is unpacked there (links, paths "
        "leaving the folder and zip bombs are refused). Webcam photos are saved there too, one file per "
        "photo, and join the class's uploads."
    )
    gen = ss[keys.UPLOAD_GENERATION]
    for i, col in enumerate(st.columns(2, gap="large")):
        with col:
            letter = "AB"[i]
            st.text_input(f"Class {letter} name", key=keys.UPLOAD_NAMES[i], value=None,
                          placeholder=f"e.g. {('cats', 'dogs')[i]}")
            st.file_uploader(
                f"Images or a .zip for class {letter}", accept_multiple_files=True,
                type=sorted(e.lstrip(".") for e in IMAGE_EXTENSIONS) + ["zip"],
                key=f"{keys.UPLOAD_FILES[i]}-{gen}",
            )  # fmt: skip
            if st.toggle("Take photos with the webcam", key=keys.UPLOAD_CAMERA_ON[i],
                         help="The browser asks for the camera only once this is on."):  # fmt: skip
                folder = choice.photo_folder(i)
                if folder is None:
                    st.info(f"Name class {letter} first: its photos go into a folder of that name.")
                else:
                    webcam_capture(folder, choice.WEBCAM_KEYS[i], f"Take a photo of class {letter}")
    st.button("Use the uploaded images", on_click=choice.use_uploads, type="primary",
              icon=":material/upload:")

# 2. Check ----------------------------------------------------------------------------------------------
st.subheader("2. Check the images")
with stop_on_error():
    scan = loaders.current_scan()

names = scan.class_names
found, usable = scan.class_counts(), scan.class_counts(usable_only=True)
st.caption(
    f"Layout: {choice.LAYOUT_KINDS.get(scan.layout.kind, scan.layout.kind)}. "
    f"Class 0 is **{md(names[0])}**, class 1 is **{md(names[1])}**."
)
for note in scan.notes:
    st.info(as_text(note), icon=":material/info:")

m = st.columns([3, 3, 2, 2, 2])
for i in range(2):
    m[i].metric(
        md(names[i]), f"{usable[i]} / {found[i]}", border=True,
        help=f"Class {i}: usable / found images. Found: valid image files. Usable: what is left after "
        "dropping extra copies and label conflicts.",
    )  # fmt: skip
m[2].metric("Skipped files", len(scan.skipped), border=True, help="Not images, broken, hidden or system.")
within = len(scan.duplicates) - len(scan.conflicts)  # scan.duplicates holds the conflicts' groups too
m[3].metric("Duplicates", within, border=True, help="Groups of byte-identical files within a class.")
m[4].metric("Label conflicts", len(scan.conflicts), border=True, help="The same image in both classes.")

st.caption("Per class: usable / found images.")
with st.expander("Rename the classes"):
    with st.form("rename_form", border=False):
        r1, r2 = st.columns(2)
        new_a = r1.text_input("Name of class 0", value=names[0])
        new_b = r2.text_input("Name of class 1", value=names[1])
        if st.form_submit_button("Rename"):
            choice.rename([new_a, new_b])
            st.rerun()
    st.button("Back to the folder names", on_click=choice.rename, args=(None,),
              disabled=ss[keys.CLASS_NAMES] is None)

t_bal, t_size, t_skip, t_dup, t_near, t_quality, t_mode, t_sample = st.tabs([
    "Class balance", "Image sizes", f"Skipped files ({len(scan.skipped):,})",
    f"Duplicates & conflicts ({len(scan.duplicates):,})", f"Near-duplicates ({len(scan.near_duplicates):,})",
    f"Image quality ({len(scan.quality):,})", "Colour modes & formats", "Sample images",
])  # fmt: skip
with t_bal:
    report.class_balance(scan)
with t_size:
    report.image_sizes(scan)
with t_skip:
    report.skipped_files(scan)
with t_dup:
    report.duplicates(scan)
with t_near:
    report.near_duplicates_of_current_split(scan)
with t_quality:
    report.image_quality(scan)
with t_mode:
    report.modes_and_formats(scan)
with t_sample:
    report.sample_images(scan, int(ss[keys.SPLIT_SEED]))

# 3. Split ----------------------------------------------------------------------------------------------
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
s1.slider("Validation share (%)", 5, 45, step=5, key=keys.SPLIT_VAL_PCT, on_change=choice.apply_split)
s2.slider("Test share (%)", 0, 45, step=5, key=keys.SPLIT_TEST_PCT, on_change=choice.apply_split)
s3.number_input("Seed", 0, 2**31 - 1, step=1, key=keys.SPLIT_SEED_INPUT, on_change=choice.apply_split,
                help="The same seed gives the same split.")
tr, va, te = ss[keys.SPLIT_RATIOS]
st.caption(f"Train gets the rest: {tr:.0%}. Each class is split with the same shares (stratified), by file.")

with stop_on_error():
    data = loaders.current_data()

table = pd.DataFrame(data.counts()).T[names]
table["total"] = table.sum(axis=1)
table.loc["total"] = table.sum()
table.index.name = "split"
c_table, c_dl = st.columns([3, 2], gap="large", vertical_alignment="bottom")
c_table.dataframe(table, width="stretch")
c_dl.download_button(
    "Download the split table (CSV)", data.split.to_csv(index=False).encode(), file_name="split.csv",
    mime="text/csv", icon=":material/download:", on_click="ignore",
    help="path, class, label, split for every usable image; a run saves the same table.",
)  # fmt: skip

# 4. Audit ---------------------------------------------------------------------------------------------
st.subheader("4. Review the labels")
audit_review.audit_section()

st.divider()
n1, n2 = st.columns(2)
n1.page_link("pages/preview.py", label="Next: see a batch as the model gets it", icon=":material/grid_view:")
n2.page_link("pages/train.py", label="Or go straight to training", icon=":material/model_training:")
