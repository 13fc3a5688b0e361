"""The static types of stages and flows, as mypy sees them (SPEC 3, STYLE 9).

The files in tests/typing/ mark each line that must fail with
``# type: ignore[code]``; with ``--warn-unused-ignores`` a clean mypy run
means every good line type-checks and every bad one is still rejected.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import site
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from mypy import api

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).parent.parent
TYPING_DIR = Path(__file__).parent / "typing"


def test_typing_files_exist() -> None:
    assert sorted(p.name for p in TYPING_DIR.glob("*.py")), "no typing files to check"


def test_mypy_agrees_with_the_typing_files(tmp_path: Path) -> None:
    stdout, stderr, status = api.run(
        [
            "--strict",
            "--warn-unused-ignores",
            "--no-error-summary",
            "--show-error-codes",
            # The package's own strictness is checked on its own; here only
            # what users see of it matters.
            "--follow-imports=silent",
            "--cache-dir",
            str(tmp_path / "mypy-cache"),
            str(TYPING_DIR),
        ]
    )
    assert (status, stdout, stderr) == (0, "", "")


def test_the_package_passes_mypy_strict(tmp_path: Path) -> None:
    package = Path(__file__).parent.parent / "streamflow"
    stdout, stderr, status = api.run(
        ["--strict", "--no-error-summary", "--cache-dir", str(tmp_path / "cache"), str(package)]
    )
    assert (status, stdout, stderr) == (0, "", "")


def _installed_elsewhere() -> str | None:
    """Why the installed streamflow says nothing about this checkout, if it does not."""
    # Where mypy looks, not sys.path: here that has the checkout, and maybe an old egg-info in it.
    found = list(importlib.metadata.distributions(name="streamflow", path=site.getsitepackages()))
    if not found:
        return "streamflow is not installed (python3 -m pip install -e .)"
    dist = found[0]
    url = json.loads(dist.read_text("direct_url.json") or "{}")
    if url.get("dir_info", {}).get("editable"):
        where = Path(unquote(urlparse(url["url"]).path))
        if where.resolve() != ROOT.resolve():
            return f"the installed streamflow is another checkout's ({where})"
    return None


def test_mypy_finds_the_installed_package_from_another_directory(tmp_path: Path) -> None:
    """A user checking their own flow in their own folder sees streamflow's types.

    An editable install through an import hook (setuptools' default for this
    layout) hides the package from mypy; the .pth file hatchling writes does not.
    """
    reason = _installed_elsewhere()
    if reason:
        pytest.skip(reason)
    (tmp_path / "user_flow.py").write_text(
        textwrap.dedent(
            """
            from collections.abc import Iterable, Iterator

            from typing_extensions import assert_type

            import streamflow as sf


            @sf.stage
            def numbers(n: int) -> Iterator[int]:
                yield from range(n)


            @sf.stage
            def total(xs: Iterable[int]) -> int:
                return sum(xs)


            assert_type((numbers(n=3) | total).run(), int)
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MYPYPATH")}
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--cache-dir", "cache", "user_flow.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", ""), (
        "mypy run from another folder does not see the installed streamflow; if it was "
        "installed before the build moved to hatchling, install it again: python3 -m pip install -e ."
    )
