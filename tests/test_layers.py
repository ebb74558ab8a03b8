"""The subpackages are the architecture, and the imports must respect it (every import statement, at module
level or inside a function, read with `ast`):

    cli  ->  report, api  ->  measure | plan  ->  model  ->  specs  ->  base (errors, units, jsonfile, outfile)

A module may import its own package and any lower layer; `measure` and `plan` are independent of each
other; nothing imports `cli`."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "roofline"
BASE = {"roofline.errors", "roofline.units", "roofline.jsonfile", "roofline.outfile"}
RANK = {"base": 0, "specs": 1, "model": 2, "measure": 3, "plan": 3, "report": 4, "api": 4, "cli": 5}


def _layer(module: str) -> str | None:
    """The layer of a module name inside roofline, or None for the top-level package itself."""
    if module == "roofline":
        return None
    if module in BASE or any(module.startswith(b + ".") for b in BASE):
        return "base"
    part = module.split(".")[1]
    if part not in RANK:
        raise AssertionError(f"{module} is in no layer: add its package to the layering test and ARCHITECTURE.md")
    return part


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path):
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.split(".")[0] == "roofline")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "roofline":
                continue
            if target in ("roofline",) + tuple(f"roofline.{p}" for p in RANK):
                # `from roofline.model import engine`: the names are modules of that package
                for a in node.names:
                    yield f"{target}.{a.name}" if a.name != "__version__" else target
            else:
                yield target


def _violations() -> list[str]:
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        me = _module_name(path)
        mine = _layer(me)
        for target in _imports(path):
            theirs = _layer(target)
            if theirs is None or theirs == mine:
                continue
            if theirs == "cli":
                bad.append(f"{me} imports {target}: nothing imports the CLI")
            elif mine is None:
                continue  # the top-level package may re-export the API (never the CLI: checked above)
            elif RANK[theirs] >= RANK[mine]:
                bad.append(f"{me} ({mine}) imports {target} ({theirs}): a layer imports only lower layers")
    return bad


def test_imports_follow_the_layers():
    assert _violations() == []


def test_every_module_is_in_a_layer():
    for path in PKG.rglob("*.py"):
        _layer(_module_name(path))


def test_the_check_catches_an_upward_import(tmp_path, monkeypatch):
    """The test can fail: a model module importing the report layer is reported."""
    fake = tmp_path / "roofline" / "model"
    fake.mkdir(parents=True)
    (fake / "bad.py").write_text("from roofline.report.render import emit\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    monkeypatch.setattr(__import__(__name__), "PKG", tmp_path / "roofline")
    assert _violations() == ["roofline.model.bad (model) imports roofline.report.render (report): "
                             "a layer imports only lower layers"]
