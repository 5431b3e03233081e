"""Train page: choose a model and settings, train in a background process, watch the run live."""

from __future__ import annotations

import streamlit as st

from bincls import BinclsError
from pages.support.shared import keys, loaders
from pages.support.shared.formatting import data_label, md
from pages.support.shared.messages import engine_words
from pages.support.shared.state import require_app
from pages.support.train import form, panel
from pages.support.train.settings import init_settings

require_app(__file__)

ss = st.session_state


def dataset_line() -> bool:
    """One line about the data the run will use; False when it cannot be used."""
    label = md(data_label(ss[keys.DATA_PATHS]))
    try:
        data = loaders.current_data()
    except BinclsError as exc:
        st.error(f"**{label}** cannot be used yet: {engine_words(exc)}", icon=":material/error:")
        st.page_link("pages/data.py", label="Fix it on the Data page", icon=":material/folder_open:")
        return False
    counts = data.counts()
    parts = " / ".join(f"{sum(counts[p].values())} {p}" for p in ("train", "val", "test"))
    t, v, te = ss[keys.SPLIT_RATIOS]
    # A folder already split into train / val [/ test] keeps its own split: the shares do not apply.
    split = "its own split" if data.scan.layout.presplit else f"split {t:.0%} / {v:.0%} / {te:.0%}"
    st.markdown(
        f":material/folder_open: **{label}** · {' vs '.join(map(md, data.class_names))} · {parts} images "
        f"({split}) · change it on the Data page"
    )
    return True


st.title("Train")
init_settings()
data_ok = dataset_line()
run = panel.shown_run()
pressed = form.preset_section(data_ok)
panel.fold_settings_for(run)
with st.expander("All settings (the recipe's values until you change one)", icon=":material/tune:",
                 key=keys.TRAIN_SETTINGS_OPEN, on_change="rerun"):
    left, right = st.columns([1, 1], gap="large")
    with left:
        form.model_settings()
        form.training_settings()
    with right:
        form.show_summary()
ss[keys.TRAIN_SAVED] = {k: ss[k] for k in (*keys.TRAIN_KEYS.values(), keys.TRAIN_SETTINGS_OPEN) if k in ss}
if pressed:
    panel.launch(panel.start)
panel.run_panel(run)
