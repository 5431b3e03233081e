"""bincls: the Streamlit app. `streamlit run app.py`"""

from pathlib import Path

import streamlit as st

# A local image: a material-icon favicon is fetched from Google's font server, which fails offline.
ICON = Path(__file__).resolve().parent / "assets" / "favicon.png"
st.set_page_config(page_title="bincls: binary image classifier", page_icon=str(ICON), layout="wide")

from pages.support.shared import keys, memory  # noqa: E402  (set_page_config must come first)
from pages.support.shared.narrow import fold_sidebar_on_phones  # noqa: E402
from pages.support.shared.sidebar import sidebar  # noqa: E402
from pages.support.shared.state import init_state  # noqa: E402

pages = {
    "Workflow": [
        st.Page("pages/label.py", title="Label", icon=":material/label:"),
        st.Page("pages/data.py", title="Data", icon=":material/folder_open:", default=True),
        st.Page("pages/preview.py", title="Preview", icon=":material/grid_view:"),
        st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
        st.Page("pages/evaluate.py", title="Evaluate", icon=":material/fact_check:"),
        st.Page("pages/predict.py", title="Predict", icon=":material/image_search:"),
    ],
    "History": [st.Page("pages/runs.py", title="Runs", icon=":material/history:")],
}
# .streamlit/config.toml hides the sidebar's page list so that a cold server does not first list the
# files in pages/ while this script imports; st.navigation's own list is wanted.
st.set_option("client.showSidebarNavigation", True)
nav = st.navigation(pages)
init_state()
st.session_state[keys.APP_BOOTED] = True
wanted = st.session_state.pop(keys.WANTED_PAGE, None)
if wanted:
    st.switch_page(wanted)  # the page a direct link asked for (see pages.support.shared.state.require_app)
sidebar(live=nav.title not in ("Data", "Predict"))  # the pages with file uploaders
with st.sidebar:
    memory.remember_browser()  # a first visit: give the browser its id cookie
    fold_sidebar_on_phones(nav.title)
try:
    nav.run()
finally:  # also when a page ends with st.stop, st.rerun or st.switch_page
    memory.save()
