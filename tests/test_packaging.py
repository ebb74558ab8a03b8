"""The wheel must carry every subpackage and the data files (spec files, model catalog)."""
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_subpackage_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {"roofline." + p.parent.relative_to(ROOT / "roofline").as_posix().replace("/", ".")
             for p in (ROOT / "roofline").rglob("__init__.py") if p.parent != ROOT / "roofline"}
    assert found | {"roofline", "roofline.hardware_specs", "roofline.engines"} <= listed, found - listed


def test_data_files_are_package_data():
    text = (ROOT / "pyproject.toml").read_text()
    assert '"roofline.specs" = ["model_catalog/*.json", "data/*.json"]' in text
    assert '"roofline.hardware_specs" = ["*.json"]' in text
    assert '"roofline.engines" = ["*.json"]' in text
    assert '"roofline.measure" = ["data/*.json"]' in text
