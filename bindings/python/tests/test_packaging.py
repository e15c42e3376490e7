"""The package under test is the installed wheel, carrying its own native library."""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

import pytest

import wsnative

SOURCE = Path(__file__).resolve().parents[1] / "wsnative"


@pytest.mark.skipif(os.environ.get("WSNATIVE_EXPECT_WHEEL") != "1", reason="not run from an installed wheel")
def test_the_installed_wheel_and_its_bundled_library_are_used():
    package = Path(wsnative.__file__).resolve().parent
    assert package != SOURCE, "the source tree was imported, not the installed package"
    assert Path(wsnative.library_path).resolve() == package / "_lib" / "libwsnative.so"
    assert importlib.metadata.version("wsnative") == wsnative.__version__ == wsnative.library_version()
    dist = importlib.metadata.distribution("wsnative")
    assert dist.metadata["Requires-Python"] == ">=3.9"
    wheel = (dist.read_text("WHEEL") or "").splitlines()
    tags = [line.split(": ", 1)[1] for line in wheel if line.startswith("Tag: ")]
    assert tags and all(t.startswith("py3-none-manylinux") for t in tags), tags
