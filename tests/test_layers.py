"""The import contracts in pyproject.toml ([tool.importlinter]) hold, and place every package.

The stages live in top-level folders mapped onto ``edgesmith.*`` by pyproject's package-dir, which
import-linter cannot follow in a source checkout; the test copies the sources into the layout a
wheel installs (``edgesmith/train/...``) and runs import-linter there, in a child process whose
``edgesmith`` is that copy.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytest.importorskip("importlinter", reason="needs import-linter (pip install 'edgesmith[dev]')")

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
_LINT = ("import sys; from importlinter.cli import lint_imports; "
         "sys.exit(lint_imports(config_filename=sys.argv[1], no_cache=True, no_logo=True))")


def _config() -> dict:
    return tomllib.loads(PYPROJECT.read_text())


def _stage(dest: Path) -> Path:
    """Copy every package's .py files to where a wheel puts them; returns the import root."""
    setuptools = _config()["tool"]["setuptools"]
    for package in setuptools["packages"]:
        src = ROOT / setuptools["package-dir"][package]
        out = dest / package.replace(".", "/")
        out.mkdir(parents=True, exist_ok=True)
        for f in src.glob("*.py"):
            shutil.copy2(f, out / f.name)
    return dest


def test_the_import_contracts_hold(tmp_path):
    root = _stage(tmp_path / "src")
    env = {**os.environ, "PYTHONPATH": str(root)}
    r = subprocess.run([sys.executable, "-c", _LINT, str(PYPROJECT)], cwd=root, env=env,
                       capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
    assert "0 broken" in r.stdout, r.stdout[-3000:]


def test_every_package_has_its_place_in_the_layers():
    """A package added to pyproject but not to the layers contract fails here, so the contract and
    ARCHITECTURE.md get the new arrow before the code grows around it."""
    config = _config()
    (layers,) = [c["layers"] for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"]
    placed = {name.strip() for layer in layers for name in layer.split("|")}
    packages = set(config["tool"]["setuptools"]["packages"]) - {"edgesmith"}
    assert packages - placed == set(), "packages the layers contract does not place"
    assert placed - packages - {"edgesmith.tfshim"} == set(), "layers that name no package"
    assert (ROOT / "edgesmith" / "tfshim.py").is_file()
