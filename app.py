"""bincls: the Streamlit app. `streamlit run app.py`"""

import streamlit as st

st.set_page_config(page_title="bincls: binary image classifier", page_icon=":material/pets:", layout="wide")

from pages import common  # noqa: E402  (set_page_config must come first)

pages = {
    "Workflow": [
        st.Page("pages/data.py", title="Data", icon=":material/folder_open:", default=True),
        st.Page("pages/preview.py", title="Preview", icon=":material/grid_view:"),
        st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
        st.Page("pages/evaluate.py", title="Evaluate", icon=":material/fact_check:"),
        st.Page("pages/predict.py", title="Predict", icon=":material/image_search:"),
    ],
    "History": [st.Page("pages/runs.py", title="Runs", icon=":material/history:")],
}
nav = st.navigation(pages)
common.init_state()
st.session_state[common.APP_BOOTED] = True
wanted = st.session_state.pop(common.WANTED_PAGE, None)
if wanted:
    st.switch_page(wanted)  # the page a direct link asked for (see common.require_app)
common.sidebar(live=nav.title not in ("Data", "Predict"))  # the pages with file uploaders
nav.run()
