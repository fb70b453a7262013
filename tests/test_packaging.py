"""The distribution ships every subpackage: pyproject lists packages by hand because of the host/ mapping."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {
        ".".join(("hipcheck",) + init.parent.relative_to(ROOT / "host" / "hipcheck").parts)
        for init in (ROOT / "host" / "hipcheck").rglob("__init__.py")
    }
    assert on_disk - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    assert "hipcheck.calibration" in listed
    assert config["package-dir"]["hipcheck.calibration"] == "calibration"


def test_calibration_imports_from_its_own_folder():
    import hipcheck.calibration

    assert Path(hipcheck.calibration.__file__).resolve().parent == ROOT / "calibration"
