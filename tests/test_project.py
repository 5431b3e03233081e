"""The project's promises about itself: README commands, CI, sample data."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", quick)


def test_readme_quick_start_has_exactly_two_commands():
    cmds = _readme_commands()
    assert len(cmds) == 2
    assert all(c.startswith("python3 -m venv .venv && ") for c in cmds)
    assert cmds[0].endswith("streamlit run app.py")
    assert "pytest" in cmds[1]


def test_ci_runs_the_readme_test_command_verbatim():
    ci = (ROOT / ".ci" / "run").read_text()
    assert _readme_commands()[1] in ci.splitlines()


def test_sample_keeps_the_original_bytes():
    """The shipped sample is real hymenoptera images, byte for byte (checked when ../shared exists)."""
    sample = ROOT / "bincls" / "sample_data"
    files = sorted(p for p in sample.rglob("*") if p.is_file())
    assert len([f for f in files if f.parent.name == "ants"]) == 30
    assert len([f for f in files if f.parent.name == "bees"]) == 30
    shared = ROOT.parent / "shared" / "data" / "hymenoptera"
    if not shared.exists():
        pytest.skip("../shared is absent")
    originals = {hashlib.sha256(p.read_bytes()).hexdigest() for p in shared.rglob("*") if p.is_file()}
    assert all(hashlib.sha256(f.read_bytes()).hexdigest() in originals for f in files)


def test_engine_imports_nothing_from_streamlit():
    for path in (ROOT / "bincls").rglob("*.py"):
        assert not re.search(r"^\s*(import|from)\s+streamlit", path.read_text(), re.M), path


# The shape of the code (issue 9): small functions, thin pages, inference apart from training ------------
def _functions(path: Path):
    import ast

    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node.end_lineno - node.lineno + 1


def test_no_engine_function_over_80_lines_and_no_engine_module_over_450():
    long_functions, long_modules = [], []
    for path in sorted((ROOT / "bincls").rglob("*.py")):
        long_functions += [f"{path.relative_to(ROOT)}:{name} ({n})" for name, n in _functions(path) if n > 80]
        if len(path.read_text().splitlines()) > 450:
            long_modules.append(str(path.relative_to(ROOT)))
    assert not long_functions and not long_modules, (long_functions, long_modules)


def test_no_page_script_over_250_lines():
    """A page is a short script of calls; what the pages share lives in pages/support/ (also held to it)."""
    long_files = {str(path.relative_to(ROOT)): n for path in sorted((ROOT / "pages").rglob("*.py"))
                  if (n := len(path.read_text().splitlines())) > 250}  # fmt: skip
    assert not long_files, long_files


# The layers (issue 21): files -> scan -> split -> dataset -> trainer -> run folder -> inference ---------
def _engine_imports() -> dict[str, set[str]]:
    """Every bincls module and the bincls modules it imports, at module level or inside a function."""
    import ast

    modules = {}
    for path in sorted((ROOT / "bincls").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # a relative import
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base])
                    base = base.rstrip(".")
                for a in node.names:
                    targets.add(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def test_nothing_below_training_imports_it():
    """A run folder is what training leaves and everything else reads: runs, inference, models and data
    never import training (or each other upwards: runs imports no inference, data no models or runs)."""
    forbidden = {
        "bincls.inference": ("bincls.training",),
        "bincls.models": ("bincls.training", "bincls.inference", "bincls.runs", "bincls.audit"),
        "bincls.data": ("bincls.training", "bincls.inference", "bincls.runs", "bincls.models",
                        "bincls.audit"),
        "bincls.runs": ("bincls.training", "bincls.inference", "bincls.audit"),
    }
    wrong = [f"{m} imports {t}" for m, targets in _engine_imports().items() for t in targets
             for layer, above in forbidden.items() if m.startswith(layer + ".") or m == layer
             if t.startswith(above)]  # fmt: skip
    assert not wrong, wrong


def test_no_import_cycle_among_engine_modules():
    """No two bincls modules import each other, directly or round a longer circle (imports inside
    functions count: they hide a circle rather than remove it)."""
    graph = _engine_imports()
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, cycles


def test_a_pages_helpers_are_used_by_that_page_alone():
    """pages/support/ is sorted by page: pages/support/<page>/ is imported only by pages/<page>.py and by
    its own folder; what several pages use lives in pages/support/shared/."""
    support = ROOT / "pages" / "support"
    users: dict[str, set[str]] = {}
    for path in [ROOT / "app.py", *sorted((ROOT / "pages").rglob("*.py"))]:
        for folder in re.findall(r"pages\.support\.(\w+)", path.read_text()):
            users.setdefault(folder, set()).add(str(path.relative_to(ROOT)))
    folders = {p.name for p in support.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert "shared" in folders and not list(support.glob("*.py"))[1:], "helpers live in folders"
    for folder in folders - {"shared"}:
        assert (ROOT / "pages" / f"{folder}.py").is_file(), f"pages/support/{folder}/ has no page"
        strangers = {u for u in users.get(folder, ()) if u not in (f"pages/{folder}.py",)
                     and not u.startswith(f"pages/support/{folder}/")}  # fmt: skip
        assert not strangers, (folder, strangers)


def test_inference_loads_no_training_loop():
    import subprocess
    import sys

    code = (
        "import sys; from bincls import Predictor, evaluate; Predictor, evaluate; "
        "print(sorted(m for m in sys.modules if m.startswith('bincls.training')))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    loaded = eval(out.stdout)  # noqa: S307 - our own output: a list of module names
    assert not {"bincls.training.loop", "bincls.training.setup", "bincls.training.callbacks"} & set(loaded)


@pytest.mark.slow
def test_the_wheel_has_the_dependencies_the_command_and_the_sample(tmp_path):
    """`pip wheel .` builds the package: requirements.txt as dependencies, a `bincls` command, the sample."""
    import subprocess
    import sys
    import zipfile

    subprocess.run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "-q", "-w", str(tmp_path)],
                   cwd=ROOT, check=True)  # fmt: skip
    wheel = next(tmp_path.glob("bincls-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = z.read(next(n for n in names if n.endswith("METADATA"))).decode()
        entry = z.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert len([n for n in names if "/sample_data/" in n]) == 60
    assert {f"bincls/web/{n}" for n in ("index.html", "bincls.js", "page.js", "bincls.css")} <= set(names)
    required = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
                if line.strip() and not line.startswith("#")]  # fmt: skip
    assert all(f"Requires-Dist: {r}" in meta for r in required)
    assert "bincls = bincls.cli:main" in entry
    target = tmp_path / "installed"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                    str(wheel)], check=True)  # fmt: skip
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, str(target / "bin" / "bincls"), "scan", "--help"], env=env,
                         capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0 and "usage:" in out.stdout, out.stderr


def test_ruff_is_clean():
    import shutil
    import subprocess
    import sys

    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (requirements-test.txt has it)")
    out = subprocess.run([ruff, "check", "--quiet", "."], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:]


# The documentation (issue 21): README is the two-minute guide, docs/ the site ------------------------------
def test_readme_is_short_and_its_links_lead_somewhere():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) < 200
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [link for link in links if not re.match(r"[a-z]+://", link)]
    missing = [link for link in local if not (ROOT / link).exists()]
    assert local and not missing, missing


def test_the_docs_site_builds_with_every_link_checked(tmp_path):
    """mkdocs --strict fails on a link to a page or an anchor that does not exist."""
    import shutil
    import subprocess
    import sys

    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or shutil.which("mkdocs")
    if mkdocs is None:
        pytest.skip("mkdocs is not installed (requirements-test.txt has mkdocs-material)")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    out = subprocess.run([mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=ROOT,
                         capture_output=True, text=True, env=env)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "site" / "index.html").is_file()
