"""Label page: from a pile of unlabelled photos to two classes, a few dozen clicks at a time."""

from __future__ import annotations

import streamlit as st

from pages.support.label import session as pile
from pages.support.label.batch import batch_grid
from pages.support.label.pile_map_view import pile_map_view
from pages.support.label.progress_view import actions, status_row
from pages.support.shared import keys
from pages.support.shared.messages import show_flashed, stop_on_error
from pages.support.shared.state import require_app

require_app(__file__)

st.title("Label")
st.caption(
    "Start from a pile of unlabelled photos: bincls shows the images worth labelling next, with its guess "
    "already chosen, and learns from every batch. Answers are kept in bincls' own cache folder; your "
    "files are only read."
)
show_flashed(keys.LABEL_MESSAGE)
with st.expander("The pile and the two classes", expanded=not st.session_state.get(keys.LABEL_PILE)):
    pile.pile_form()
with stop_on_error("Check the folders and the class names above."):
    session = pile.current()
if session is None:
    st.stop()

with st.container(horizontal=True, vertical_alignment="center"):
    st.markdown(pile.describe(session))
    st.button("Look for new images", on_click=pile.look_again, icon=":material/refresh:",
              help="list the folders again: new photos, a server's --collect folder that grew")  # fmt: skip
status = status_row(session)
st.subheader("Label these next")
batch_grid(session)
st.subheader("Your labels")
actions(session, status)
st.subheader("The whole pile")
pile_map_view(session)
