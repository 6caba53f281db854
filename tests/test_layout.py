"""The package's layout: imports run one way (import-linter's contracts in pyproject.toml),
modules stay short, and a lazy import of a vidderain module only ever delays Keras."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import vidderain

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(vidderain.__file__).resolve().parent
MAX_LINES = 700
_LINT = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"


def lint_imports(cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`lint-imports` with the contracts of `cwd`'s pyproject.toml, on the vidderain found from `cwd`."""
    return subprocess.run([sys.executable, "-c", _LINT, "--no-cache", "--no-logo"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_imports_keep_every_contract_in_pyproject():
    result = lint_imports(ROOT)
    assert result.returncode == 0, f"an import breaks a contract of pyproject.toml:\n{result.stdout}{result.stderr}"
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("engine.py", "import vidderain.cli", "Imports run one way"),
        ("io/video/reader.py", "import vidderain.engine", "io never imports engine, nets or jobs"),
        ("engine.py", "import vidderain.io.files", "engine never imports io"),
        ("nets/unet.py", "import vidderain.train.losses", "nets never imports io, engine, jobs or train"),
        ("jobs/folder.py", "import rich", "Only cli imports typer and rich"),
        ("models.py", "import vidderain.data.pairs", "Imports run one way"),
    ],
)
def test_an_import_against_the_layers_breaks_its_contract(tmp_path, module, line, contract):
    shutil.copytree(PACKAGE, tmp_path / "vidderain", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with open(tmp_path / "vidderain" / module, "a") as file:
        file.write(f"\n{line}\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}  # the copy comes before the installed package
    result = lint_imports(tmp_path, env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{contract}" in result.stdout and "BROKEN" in result.stdout, result.stdout


def _modules() -> dict[str, Path]:
    """Every module of the package by its dotted name (a package by its __init__)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def test_no_module_is_longer_than_700_lines():
    long = {name: n for name, path in _modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}, f"split these by concern, as io/video is: {long}"


def _runs_at_import(tree: ast.Module):
    """The nodes that run when the module is imported: not function bodies, not `if TYPE_CHECKING:` blocks."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def _imported(node: ast.AST, modules: dict[str, Path]) -> list[str]:
    """The modules an import statement loads (`from vidderain.jobs import bench` loads vidderain.jobs.bench)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.module:
        submodules = [f"{node.module}.{alias.name}" for alias in node.names if f"{node.module}.{alias.name}" in modules]
        return submodules or [node.module]
    return []


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _loads_keras(name: str, modules: dict[str, Path], seen: set[str]) -> bool:
    """Whether importing vidderain module `name` imports Keras or TensorFlow, itself or through what it imports."""
    for module in _with_parents(name):
        if module in seen or module not in modules:
            continue
        seen.add(module)
        for node in _runs_at_import(ast.parse(modules[module].read_text())):
            for imported in _imported(node, modules):
                if imported.split(".")[0] in ("keras", "tensorflow"):
                    return True
                if imported.startswith("vidderain.") and _loads_keras(imported, modules, seen):
                    return True
    return False


def test_a_lazy_import_of_a_vidderain_module_only_delays_keras():
    modules = _modules()
    offenders = []
    for path in modules.values():
        tree = ast.parse(path.read_text())
        at_import = {id(node) for node in _runs_at_import(tree)}
        for node in ast.walk(tree):
            if id(node) in at_import:
                continue
            for imported in _imported(node, modules):
                if imported.startswith("vidderain.") and not _loads_keras(imported, modules, set()):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {imported}")
    # A lazy import that dodges a cycle means a function is in the wrong module; one that
    # delays Keras keeps `vidderain --help` and `vidderain models` quick, and is fine.
    assert offenders == [], f"imported inside a function, yet they load no Keras: {offenders}"


def test_the_lazy_import_check_sees_a_lazy_import(tmp_path, monkeypatch):
    package = tmp_path / "vidderain"
    shutil.copytree(PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    with open(package / "jobs" / "folder.py", "a") as file:
        file.write("\n\ndef _late():\n    from vidderain.jobs import cluster\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", package)
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    with pytest.raises(AssertionError, match=r"jobs/folder.py:\d+ imports vidderain.jobs.cluster"):
        test_a_lazy_import_of_a_vidderain_module_only_delays_keras()
