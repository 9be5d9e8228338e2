"""A regular (non-editable) install carries everything the site needs: the templates are package data."""
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
    shutil.copytree(ROOT / "atlas", src / "atlas", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(src)], check=True, cwd=tmp_path,
                   env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    shipped = {p.relative_to(target / "atlas" / "templates").as_posix()
               for p in (target / "atlas" / "templates").rglob("*") if p.is_file()}
    source = {p.relative_to(ROOT / "atlas" / "templates").as_posix()
              for p in (ROOT / "atlas" / "templates").rglob("*") if p.is_file()}
    assert source and shipped == source
    probe = ("from atlas.sitegen.writer import templates_dir; import atlas; "
             "print(templates_dir()); print(atlas.__file__)")
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True, cwd=tmp_path,
                         env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}).stdout.split()
    assert out[0] == str(target / "atlas" / "templates") and out[1].startswith(str(target))
