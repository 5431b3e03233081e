"""What a person chose stays put across pages and browser reloads: a small state file per browser.

Streamlit's session state lives as long as the browser tab's connection: a reload starts a new session
with the defaults. So the choices that matter (the dataset, its split, the Train page's settings, the run
being followed) are also written to `<cache folder>/app-state/<id>.json`, bincls' own folder, never a
user's. The id is a random token kept in a cookie: Streamlit can read cookies (`st.context.cookies`) but
has no call to set one, so the page sets it once with a line of JavaScript.
"""

from __future__ import annotations

import copy
import re
import secrets
from pathlib import Path

import streamlit as st

from bincls.json_files import read_json, write_json_atomic
from bincls.paths import cache_dir, uploads_dir
from pages.support.shared import keys

COOKIE = "bincls_user"
COOKIE_DAYS = 365
_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")


def _upload_session(path: str) -> bool:
    """A folder right inside bincls' uploads folder: the only place webcam photos wait to be used."""
    return Path(path).resolve().parent == uploads_dir().resolve()


# Session keys kept, with how a value read back from JSON becomes the session's again.
KEPT = {
    keys.DATA_PATHS: lambda v: [str(p) for p in v] if isinstance(v, list) and v else None,
    keys.CLASS_NAMES: lambda v: [str(n) for n in v] if isinstance(v, list) and len(v) == 2 else None,
    keys.SPLIT_RATIOS: lambda v: tuple(float(x) for x in v) if isinstance(v, list) and len(v) == 3 else None,
    keys.SPLIT_SEED: lambda v: int(v) if isinstance(v, int) else None,
    keys.CURRENT_RUN: lambda v: v if isinstance(v, str) else None,
    keys.BROWSE_DIR: lambda v: v if isinstance(v, str) else None,
    keys.UPLOAD_PHOTOS: lambda v: v if isinstance(v, str) and _upload_session(v) else None,
    keys.TRAIN_SAVED: lambda v: v if isinstance(v, dict) else None,
    keys.TRAIN_PRESET_SHOWN: lambda v: v if isinstance(v, dict) else None,
    keys.TRAIN_OWN_BUDGETS: lambda v: v if isinstance(v, dict) else None,
    keys.TRAIN_BUDGET_PRESET: lambda v: v if isinstance(v, str) else None,
    keys.LABEL_PILE: lambda v: [str(p) for p in v] if isinstance(v, list) and v else None,
    keys.LABEL_CLASSES: lambda v: [str(n) for n in v] if isinstance(v, list) and len(v) == 2 else None,
}
ss = st.session_state


def _state_file(user: str):
    return cache_dir() / "app-state" / f"{user}.json"


def user_id() -> str:
    """This browser's id: from its cookie, else a new one (which `remember_browser` gives the browser)."""
    if keys.USER_ID not in ss:
        sent = st.context.cookies.get(COOKIE)
        known = isinstance(sent, str) and _ID.fullmatch(sent) is not None  # (AppTest has no cookies)
        ss[keys.USER_ID] = sent if known else secrets.token_urlsafe(18)
        ss[keys.USER_COOKIE_SENT] = known
    return ss[keys.USER_ID]


def restore() -> None:
    """Once per session, before any default is set: what this browser chose last time."""
    if ss.get(keys.USER_RESTORED):
        return
    ss[keys.USER_RESTORED] = True
    saved = read_json(_state_file(user_id()), {})
    for key, convert in KEPT.items():
        if key in saved:
            try:
                value = convert(saved[key])
            except (TypeError, ValueError):
                continue  # edited by hand into something else: the default instead
            if value is not None or key in (keys.CLASS_NAMES, keys.CURRENT_RUN):
                ss[key] = value


def save() -> None:
    """After every run of the app: write what changed (nothing when nothing did)."""
    if keys.USER_ID not in ss:
        return
    now = {key: ss[key] for key in KEPT if key in ss}
    if now == ss.get(keys.USER_SAVED):
        return
    path = _state_file(ss[keys.USER_ID])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, now)
    except OSError:
        return  # a read-only cache folder: the choices last as long as the session, as before
    ss[keys.USER_SAVED] = copy.deepcopy(now)


def remember_browser() -> None:
    """Give the browser its id cookie, once, when it did not send one (a first visit)."""
    if ss.get(keys.USER_COOKIE_SENT):
        return
    ss[keys.USER_COOKIE_SENT] = True
    cookie = f"{COOKIE}={user_id()}; max-age={COOKIE_DAYS * 86400}; path=/; samesite=strict"
    st.html(f"<script>document.cookie = {cookie!r};</script>", unsafe_allow_javascript=True)
