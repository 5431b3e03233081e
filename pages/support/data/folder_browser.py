"""The folder browser: walk the folders on this computer (inside BINCLS_DATA_ROOT when it is set) and
take one as the dataset, or two as the classes. Listing and counting are `bincls.data.browse`'s."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from bincls.data import data_root
from bincls.data.browse import LIST_CAP
from bincls.paths import SAMPLE_DATA
from pages.support.data import choice
from pages.support.shared import keys, loaders
from pages.support.shared.formatting import code, md

ss = st.session_state


def folder_browser() -> None:
    here = Path(ss[keys.BROWSE_DIR])
    if not here.is_dir() or not data_root.allowed(here):  # the browser never leaves BINCLS_DATA_ROOT
        here = data_root.browse_home()
        ss[keys.BROWSE_DIR] = str(here)
    _toolbar(here)
    subs = loaders.subfolders(str(here))
    listing, actions = st.columns(2, gap="large")
    with listing:
        _listing(subs)
    with actions:
        _actions(here, {s.name: s.images_label for s in subs})


def _toolbar(here: Path) -> None:
    with st.container(horizontal=True, vertical_alignment="bottom"):
        st.text_input("Current folder", value=str(here), disabled=True, width=560)
        st.button("Up", icon=":material/arrow_upward:", on_click=choice.browse_to,
                  args=(str(here.parent),), help="Go to the parent folder",
                  disabled=here.parent == here or here == data_root.data_root())
        st.button("Home", icon=":material/home:", on_click=choice.browse_to,
                  args=(str(data_root.browse_home()),))
        st.button("Sample", icon=":material/pets:", on_click=choice.browse_to, args=(str(SAMPLE_DATA),),
                  help="Go to the bundled sample's folder", disabled=data_root.data_root() is not None)


def _listing(subs: list) -> None:
    if not subs:
        st.info("No subfolders here. This folder itself can be a class folder.", icon=":material/folder_off:")
        return
    table = pd.DataFrame([(s.name, s.images_label) for s in subs], columns=["folder", "images"])
    st.dataframe(
        table, hide_index=True, width="stretch", height=min(38 + 35 * len(table), 320),
        column_config={
            "folder": st.column_config.TextColumn("Subfolder"),
            "images": st.column_config.TextColumn("Images", help="Files with image extensions"),
        },
    )  # fmt: skip
    if len(subs) >= LIST_CAP:
        st.caption(f"Only the first {LIST_CAP} subfolders are listed.")


def _actions(here: Path, image_counts: dict[str, str]) -> None:
    if image_counts:
        if ss.get(keys.BROWSE_SELECTED) not in image_counts:
            ss[keys.BROWSE_SELECTED] = next(iter(image_counts))
        st.selectbox(
            "Subfolder", list(image_counts), key=keys.BROWSE_SELECTED,
            format_func=lambda n, c=image_counts: f"{n}  ({c.get(n, '?')} images)",
        )  # fmt: skip
        with st.container(horizontal=True):
            st.button("Open", icon=":material/folder_open:", on_click=choice.open_selected)
            for slot in "AB":
                st.button(f"As class {slot}", on_click=choice.pick_selected, args=(slot,),
                          help=f"Use this subfolder as class {slot}")
            st.button("As dataset", on_click=choice.use_selected,
                      help="Use this subfolder as the dataset folder (it holds the two classes)")
    st.markdown(f"**This folder** ({md(here.name or here)})")
    # The primary action only where it fits: a folder with at least two subfolders of images.
    dataset_like = sum(1 for n in image_counts.values() if n not in ("0", "")) >= 2
    with st.container(horizontal=True):
        st.button("Use as dataset", on_click=choice.use_data, args=([str(here)], "this folder"),
                  type="primary" if dataset_like else "secondary",
                  help="This folder holds two class folders, or train / val [/ test] folders.")
        st.button("Use as class A", on_click=choice.pick, args=("A", str(here)))
        st.button("Use as class B", on_click=choice.pick, args=("B", str(here)))
    picks = ss[keys.BROWSE_PICKS]
    st.caption(
        f"Class A: {code(picks['A'] or 'not picked')}  \nClass B: {code(picks['B'] or 'not picked')}  \n"
        "When both are picked they become the two classes."
    )
