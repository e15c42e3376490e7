"""Runs a benchmark in its own venv (build/benchvenv) with the Python libraries it compares,
installed with pip: picows, socketify (needs libuv1, e.g. `apt-get install libuv1`) and
websockets. wsnative itself is imported from this source tree (bindings/python), with the
library of the checkout (target/release; build it with `cargo build --release`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent.parent
VENV = Path(os.environ.get("WSNATIVE_BENCHVENV") or REPO / "build" / "benchvenv")
PACKAGES = ["picows", "socketify", "websockets", "websocket-client"]


def ensure() -> None:
    """Re-executes the running script in the bench venv (created and filled when needed)."""
    py = VENV / "bin" / "python"
    if Path(sys.prefix).resolve() != VENV.resolve():
        if not py.exists():
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", *PACKAGES], check=True)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")]))
        os.execve(str(py), [str(py), *sys.argv], env)
    sys.path.insert(0, str(HERE.parent))


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for p in ("picows", "socketify", "websockets"):
        try:
            out.append(f"{p} {version(p)}")
        except PackageNotFoundError:
            out.append(f"{p} (missing)")
    return ", ".join(out)
