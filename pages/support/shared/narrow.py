"""Phones: the sidebar folds away after each page change and after a reload.

On a narrow screen the sidebar lies over the page. Streamlit folds it on a phone's first visit, but it keeps
the last open/closed state in the browser (localStorage "stSidebarCollapsed-…") and that state wins over
its own "auto" at every later load, and a click on a page link leaves it open: after opening it once to
navigate, every page opened under the sidebar. This script, sent once per page shown, folds it and forgets
the stored state, on narrow screens only (below Streamlit's md breakpoint, 768 px).
"""

from __future__ import annotations

import json

import streamlit as st

NARROW = "(max-width: 767.98px)"
_SCRIPT = """<script>
(() => {{
  const page = {page};  // a new page is a new script: Streamlit runs it once, when it appears
  if (!window.matchMedia({narrow}).matches) return;
  const fold = () => {{
    const sidebar = document.querySelector('[data-testid="stSidebar"]');
    const open = sidebar && sidebar.getBoundingClientRect().right > 1;
    const button = document.querySelector('[data-testid="stSidebarCollapseButton"] button');
    if (open && button) button.click();
    for (const key of Object.keys(window.localStorage)) {{
      if (key.startsWith("stSidebarCollapsed-")) window.localStorage.removeItem(key);
    }}
  }};
  fold();
  setTimeout(fold, 300);  // the sidebar may still be sliding in when the page is drawn
}})();
</script>"""


def fold_sidebar_on_phones(page: str) -> None:
    """Fold the sidebar on a narrow screen once `page` is shown (call it in the sidebar, every run)."""
    st.html(_SCRIPT.format(page=json.dumps(page), narrow=json.dumps(NARROW)), unsafe_allow_javascript=True)
