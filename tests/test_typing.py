"""The static types of stages and flows, as mypy sees them (SPEC 3, STYLE 9).

The files in tests/typing/ mark each line that must fail with
``# type: ignore[code]``; with ``--warn-unused-ignores`` a clean mypy run
means every good line type-checks and every bad one is still rejected.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mypy import api

pytestmark = pytest.mark.timeout(60)

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
