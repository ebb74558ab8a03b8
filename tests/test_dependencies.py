"""Every package the code imports is declared in pyproject.toml (or is the standard library), so that
`pip install .` alone gives a working `roofline` (issue: a fresh install crashed on an undeclared `click`).

The imports are read from the source with `ast` (top-level and function-level ones alike), not from what
happens to be installed in the test environment, where test extras pull in packages the main job lacks."""
import ast
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

# Import name -> distribution name, where the two differ.
DISTRIBUTION_OF = {"pynvml": "nvidia-ml-py", "yaml": "pyyaml", "PIL": "pillow"}


def _normalise(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip().lower().replace("_", "-")


def _imported_top_levels() -> dict[str, set[str]]:
    """{top-level module: {files importing it}} for every absolute import under roofline/."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / "roofline").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_import_is_declared_or_stdlib():
    required = {_normalise(r) for r in PYPROJECT["project"]["dependencies"]}
    optional = {_normalise(r) for extra in PYPROJECT["project"]["optional-dependencies"].values() for r in extra}
    undeclared = {}
    for module, files in _imported_top_levels().items():
        if module in sys.stdlib_module_names or module == "roofline" or module == "__future__":
            continue
        dist = DISTRIBUTION_OF.get(module, module).lower().replace("_", "-")
        if dist not in required and dist not in optional:
            undeclared[module] = sorted(files)
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


def test_optional_packages_are_imported_lazily():
    """A package of an extra (torch in `bench`) may only be imported inside a function, so that `roofline`
    starts without it."""
    required = {_normalise(r) for r in PYPROJECT["project"]["dependencies"]}
    eager = []
    for path in (ROOT / "roofline").rglob("*.py"):
        for node in ast.parse(path.read_text()).body:  # module level only
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
            for name in names:
                top = name.split(".")[0]
                dist = DISTRIBUTION_OF.get(top, top).lower().replace("_", "-")
                if top not in sys.stdlib_module_names and top not in ("roofline", "__future__") \
                        and dist not in required:
                    eager.append(f"{path.relative_to(ROOT)}: {name}")
    assert not eager, eager


def test_torch_is_only_an_extra():
    """The main job must not download a torch build: torch lives in the `bench` extra only."""
    assert "torch" not in {_normalise(r) for r in PYPROJECT["project"]["dependencies"]}
    assert any(_normalise(r) == "torch" for r in PYPROJECT["project"]["optional-dependencies"]["bench"])


def test_click_is_not_imported_directly():
    """typer >= 0.29 carries its own click; importing click would catch none of typer's exceptions."""
    assert "click" not in _imported_top_levels()
