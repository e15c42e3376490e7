"""Finds and loads the wsnative shared library, and checks its version.

Search order:
1. ``$WSNATIVE_LIBRARY`` (a path to the library file); when set, nothing else is tried.
2. The library bundled in the package: ``wsnative/_lib/libwsnative.so`` (``.dylib``, ``wsnative.dll``).
3. A source checkout: ``<repo>/target/release`` and ``<repo>/target/debug`` when the package is
   imported from ``bindings/python`` (``$CARGO_TARGET_DIR`` is honoured).
4. The system's library path (``ctypes.util.find_library("wsnative")``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from pathlib import Path

#: The version of the C API this package is written against (major, minor).
API_VERSION: tuple[int, int] = (0, 1)

ENV_VAR = "WSNATIVE_LIBRARY"


def _file_name() -> str:
    if sys.platform == "win32":
        return "wsnative.dll"
    if sys.platform == "darwin":
        return "libwsnative.dylib"
    return "libwsnative.so"


def _candidates() -> list[Path]:
    name = _file_name()
    here = Path(__file__).resolve().parent
    paths = [here / "_lib" / name]
    repo = here.parent.parent.parent  # bindings/python/wsnative -> repo root
    if (repo / "Cargo.toml").is_file():
        target = Path(os.environ.get("CARGO_TARGET_DIR") or (repo / "target"))
        paths += [target / "release" / name, target / "debug" / name]
    return paths


class LibraryNotFound(ImportError):
    """The wsnative shared library could not be loaded, or its version does not match."""


def load() -> tuple[ctypes.CDLL, str]:
    """Loads the library; returns it with the path it came from."""
    explicit = os.environ.get(ENV_VAR)
    tried: list[str] = []
    if explicit:
        try:
            lib = ctypes.CDLL(explicit)
        except OSError as e:
            raise LibraryNotFound(
                f"wsnative: cannot load the library named by ${ENV_VAR}={explicit!r}: {e}"
            ) from None
        _check_version(lib, explicit)
        return lib, explicit
    for p in _candidates():
        if p.is_file():
            try:
                lib = ctypes.CDLL(str(p))
            except OSError as e:
                tried.append(f"{p} ({e})")
                continue
            _check_version(lib, str(p))
            return lib, str(p)
        tried.append(f"{p} (absent)")
    found = ctypes.util.find_library("wsnative")
    if found:
        try:
            lib = ctypes.CDLL(found)
            _check_version(lib, found)
            return lib, found
        except OSError as e:
            tried.append(f"{found} ({e})")
    else:
        tried.append("system library path (find_library('wsnative') found nothing)")
    raise LibraryNotFound(
        "wsnative: the native library was not found. Looked for:\n  "
        + "\n  ".join(tried)
        + f"\nBuild it with `cargo build --release` in the wsnative repository and reinstall the "
        f"package, or set ${ENV_VAR}=/path/to/{_file_name()}."
    )


def _check_version(lib: ctypes.CDLL, where: str) -> None:
    try:
        fn = lib.wsn_version
    except AttributeError:
        raise LibraryNotFound(f"wsnative: {where} is not a wsnative library (no wsn_version)") from None
    fn.argtypes = []
    fn.restype = ctypes.c_char_p
    text = (fn() or b"").decode("ascii", "replace")
    parts = text.split(".")
    try:
        major, minor = int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        raise LibraryNotFound(f"wsnative: {where} reports an unreadable version {text!r}") from None
    if (major, minor) != API_VERSION:
        want = ".".join(map(str, API_VERSION))
        raise LibraryNotFound(
            f"wsnative: {where} is version {text}, but this package needs {want}.x; "
            f"install the matching package or point ${ENV_VAR} at a {want}.x library"
        )
