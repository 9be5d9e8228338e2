"""A regular (non-editable) install carries everything the site needs: every package, and the top-level
``templates/`` folder as the package data ``atlas/templates/``."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_non_editable_install_ships_the_templates(tmp_path):
    pytest.importorskip("setuptools")
    src, target = tmp_path / "src", tmp_path / "site-packages"
    src.mkdir()  # a copy, so that the build's scratch folders stay out of the checkout
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("atlas", "templates"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(src)], check=True, cwd=tmp_path,
                   env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    shipped = {p.relative_to(target / "atlas" / "templates").as_posix()
               for p in (target / "atlas" / "templates").rglob("*") if p.is_file()}
    source = {p.relative_to(ROOT / "templates").as_posix() for p in (ROOT / "templates").rglob("*") if p.is_file()}
    assert source and shipped == source
    probe = ("from atlas.sitegen.writer import templates_dir; import atlas, atlas.app; atlas.app.install(); "
             "print(templates_dir()); print(atlas.__file__)")
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True, cwd=tmp_path,
                         env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}).stdout.split()
    assert out[0] == str(target / "atlas" / "templates") and out[1].startswith(str(target))


def test_pyproject_lists_every_package():
    """setuptools installs only the packages pyproject.toml lists (the templates' mapping needs the list):
    a new subpackage must be added there, or a regular install would lack it."""
    import tomllib

    from setuptools import find_packages

    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    assert sorted(listed) == sorted(find_packages(str(ROOT), include=["atlas*"]) + ["atlas.templates"])
