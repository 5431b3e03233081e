"""One way to show a command the app offers (train, serve, predict, curl, a Python snippet): with the Python
that runs the app, so that pasted into a plain shell in the project folder it runs. A bare `python` is
whichever Python the shell finds first, often one without the project's packages (`No module named
'pandas'`), and `torchrun` is only on the PATH of an activated environment.

The engine gives commands as argument lists starting with "python" or "torchrun" (`to_command`,
`serve_command`); `command` writes them for this machine.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from pathlib import Path

import pandas as pd
import streamlit as st

from bincls.paths import PROJECT_ROOT
from bincls.runs.folder import RunFolder

_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")  # a leading NAME=value: the command's environment


def interpreter() -> str:
    """The app's Python as a shell would run it from the project folder: `.venv/bin/python` for the
    project's own environment, a bare name when that name on the PATH is this very Python (no virtual
    environment in between), else its full path."""
    exe = Path(sys.executable)
    if exe.is_relative_to(PROJECT_ROOT):
        return str(exe.relative_to(PROJECT_ROOT))
    in_venv = sys.prefix != sys.base_prefix
    if not in_venv and shutil.which(exe.name) == str(exe):
        return exe.name
    return str(exe)


def short_path(arg: str) -> str:
    """A path inside the project folder as seen from it (`runs/…`, `bincls/sample_data`); others as given."""
    p = Path(arg)
    if p.is_absolute() and p.is_relative_to(PROJECT_ROOT) and p != PROJECT_ROOT:
        return str(p.relative_to(PROJECT_ROOT))
    return arg


def command(argv: list[str] | str) -> str:
    """A command line (argument list, or a line to split) that runs as shown from the project folder: a
    leading `python` or `torchrun` becomes the app's interpreter, paths inside the project are shortened,
    everything is quoted for a POSIX shell."""
    parts = shlex.split(argv) if isinstance(argv, str) else [os.fspath(a) for a in argv]
    env = []
    while parts and _ASSIGNMENT.match(parts[0]):
        env.append(parts.pop(0))
    heads = {"python": [interpreter()], "python3": [interpreter()],
             "torchrun": [interpreter(), "-m", "torch.distributed.run"]}  # fmt: skip
    head = heads.get(parts[0]) if parts else None
    if head:
        parts = head + parts[1:]
    parts = [parts[0], *(short_path(p) for p in parts[1:])] if parts else parts
    return shlex.join([*env, *parts])


def show_command(argv: list[str] | str) -> None:
    """The command in a code block (with Streamlit's copy button), as `command` writes it."""
    st.code(command(argv), language="bash", wrap_lines=True)


def python_snippet(code: str) -> str:
    """How to run a Python snippet with the app's interpreter, from the project folder."""
    return f"{interpreter()} - <<'EOF'\n{code.rstrip()}\nEOF"


def example_image(run: RunFolder) -> str | None:
    """An image for a command's example: the run's first test image (else any image it trained on), so
    the command shown runs as it is; None when the run's split is gone."""
    try:
        split = pd.read_csv(run.split_path, usecols=["path", "split"])
    except (OSError, ValueError):
        return None
    for part in ("test", "val", "train"):
        for path in split.loc[split["split"] == part, "path"]:
            if os.path.isfile(path):
                return short_path(str(path))
    return None
