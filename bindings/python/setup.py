"""Bundles the native library into the package (wsnative/_lib/).

Where the library comes from, in order:
- $WSNATIVE_LIBRARY, when it names a file;
- the repository this package sits in (bindings/python -> ../..): `cargo build --release` runs
  there (skip it with WSNATIVE_SKIP_CARGO=1 when the library is already built), and
  target/release/libwsnative.so (or $CARGO_TARGET_DIR/release) is copied.
Without either the package installs without a library, and `import wsnative` then says where
it looked (set $WSNATIVE_LIBRARY at run time).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
NAME = {"win32": "wsnative.dll", "darwin": "libwsnative.dylib"}.get(sys.platform, "libwsnative.so")


def find_library():
    explicit = os.environ.get("WSNATIVE_LIBRARY")
    if explicit and Path(explicit).is_file():
        return Path(explicit)
    if not (REPO / "Cargo.toml").is_file():
        return None
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
    built = target / "release" / NAME
    if os.environ.get("WSNATIVE_SKIP_CARGO") != "1" and shutil.which("cargo"):
        print("wsnative: cargo build --release in", REPO, flush=True)
        subprocess.run(["cargo", "build", "--release", "--lib"], cwd=REPO, check=True)
    return built if built.is_file() else None


class BuildWithLibrary(build_py):
    def run(self):
        super().run()
        lib = find_library()
        dest = Path(self.build_lib) / "wsnative" / "_lib"
        if lib is None:
            print("wsnative: WARNING: no native library bundled; set WSNATIVE_LIBRARY at run time", flush=True)
            return
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy2(lib, dest / NAME)
        # The release profile keeps line tables (debug = 1) for backtraces in development; the
        # wheel ships without them (about a seventh of the size). The symbols stay.
        if sys.platform.startswith("linux") and shutil.which("strip"):
            subprocess.run(["strip", "--strip-debug", str(dest / NAME)], check=True)
        print(f"wsnative: bundled {lib}", flush=True)


class BinaryDistribution(Distribution):
    """The wheel carries a native library: tag it for this platform."""

    def has_ext_modules(self):
        return True


try:  # setuptools 70.1 and newer carry bdist_wheel; older ones use the wheel package's
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # pragma: no cover
    from wheel.bdist_wheel import bdist_wheel


class PlatformWheel(bdist_wheel):
    """py3-none-<platform>: no extension module is compiled (ctypes loads the library), so one
    wheel serves every Python 3 interpreter of the platform."""

    def get_tag(self):
        _, _, platform = super().get_tag()
        return "py3", "none", platform


setup(
    cmdclass={"build_py": BuildWithLibrary, "bdist_wheel": PlatformWheel},
    distclass=BinaryDistribution,
)
