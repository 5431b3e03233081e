"""The commands the documentation shows (issue 21): every `python -m bincls` line in README.md and docs/
names a real subcommand and real options, and the README's command-line block runs, as written, on the
shipped sample."""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bincls.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _bash_lines(path: Path) -> list[str]:
    """The lines of a file's ```bash blocks that run bincls, comments and continuations joined."""
    text = path.read_text()
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if re.search(r"-m bincls\b|^bincls\b", line):
                out.append(line)
    return out


def _documented() -> list[tuple[str, str]]:
    return [(p.name, line) for p in DOCS for line in _bash_lines(p)]


def _subcommands() -> dict:
    parser = build_parser()
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return action.choices


@pytest.mark.parametrize(("where", "line"), _documented())
def test_every_documented_command_names_real_options(where, line):
    words = shlex.split(line.replace("[", " ").replace("]", " ").replace("|", " "))
    after = words[words.index("bincls") + 1 :]
    sub = _subcommands().get(after[0])
    assert sub is not None, f"{where}: `{after[0]}` is not a bincls command: {line}"
    flags = {w.split("=", 1)[0] for w in after[1:] if w.startswith("-") and not re.fullmatch(r"-\d.*", w)}
    unknown = sorted(f for f in flags if f not in sub._option_string_actions)
    assert not unknown, f"{where}: {line}: bincls {after[0]} has no {unknown}"


def test_the_docs_show_commands():
    assert len(_documented()) >= 10


# The README's block, run as written ------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _instantiate(line: str, values: dict[str, str]) -> list[str]:
    """A documented line as a command: optional groups of placeholders dropped, optional flags kept,
    the first of `a|b` choices taken, placeholders replaced by real paths."""
    line = re.sub(r"\[(?:PATH|FOLDER)\]", "", line)  # an optional second data path
    line = line.replace("[", "").replace("]", "")
    line = re.sub(r"(\S+?)\|\S+", r"\1", line)
    words = shlex.split(line)
    words = words[words.index("bincls") + 1 :]
    return [sys.executable, "-m", "bincls", *[values.get(w, w) for w in words]]


@pytest.mark.slow
def test_the_readmes_command_line_block_runs_on_the_sample(sample_dir, tmp_path, imagenet_hub,
                                                           mobilenet_weights):  # fmt: skip
    """label, scan, audit, train, resume, weights, evaluate, predict, export (ONNX, web) and serve, as the
    README writes them."""
    lines = [line for line in _bash_lines(ROOT / "README.md") if "-m bincls" in line]
    expected = ["label", "scan", "audit", "train", "train", "weights", "evaluate", "predict", "export",
                "export", "serve"]  # fmt: skip
    assert [shlex.split(x)[3] for x in lines] == expected
    env = {**os.environ, "BINCLS_RUNS_DIR": str(tmp_path / "runs"), "PYTHONPATH": str(ROOT)}
    ants = sorted((sample_dir / "ants").iterdir())[0]
    values = {"PATH": str(sample_dir), "FOLDER": str(sample_dir), "S": "60", "photo.jpg": str(ants),
              "folder/": str(sample_dir / "bees"), "PILE": str(sample_dir), "A": "ants", "B": "bees",
              "FILE": str(mobilenet_weights)}  # fmt: skip

    def run(line: str) -> subprocess.CompletedProcess:
        return subprocess.run(_instantiate(line, values), cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=600)  # fmt: skip

    for line in lines:
        if "serve" in line:
            _serves(_instantiate(line, {**values, "8000": str(_free_port())}), env)
            continue
        out = run(line)
        if " --resume " in f" {line} ":  # the run finished: resuming it is refused in one line, no traceback
            assert out.returncode != 0 and "nothing to resume" in out.stderr and "Traceback" not in out.stderr
            continue
        assert out.returncode == 0, (line, out.stderr[-2000:])
        if shlex.split(line)[3] == "train":
            values["runs/RUN_ID"] = out.stdout.strip().splitlines()[-1]  # train prints its run folder last


def _serves(cmd: list[str], env: dict) -> None:
    import httpx

    port = cmd[cmd.index("--port") + 1]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            assert proc.poll() is None, proc.stdout.read()[-2000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(1)
        raise AssertionError("bincls serve did not answer /health")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
