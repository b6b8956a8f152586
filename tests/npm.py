"""npm packages installed into a folder of their own, for the tests and benchmarks that run
a Node.js program (the MCP Inspector, the seed's server in bench/peer.py)."""

import shutil
import subprocess
from pathlib import Path

# Under the repository's top, ignored by git.
CACHE = Path(__file__).resolve().parent.parent / ".cache"


class NpmUnavailable(RuntimeError):
    """npm could not install the packages (it says why)."""


def installed(folder: Path, packages: list[str]) -> Path:
    """`folder`, with exactly `packages` (pinned: `name@version`) installed in it; installs
    them unless the last install there was of the same pins."""
    pins = " ".join(packages)
    marker = folder / "installed"
    if marker.exists() and marker.read_text() == pins:
        return folder
    npm = shutil.which("npm")
    if npm is None:
        raise NpmUnavailable("npm is not on PATH (Debian: apt-get install npm)")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    try:
        done = subprocess.run(
            [npm, "install", "--prefix", str(folder), "--no-audit", "--no-fund",
             "--loglevel=error", *packages],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise NpmUnavailable("npm install took more than 10 minutes") from None
    if done.returncode != 0:
        raise NpmUnavailable(f"npm install failed:\n{done.stderr[-2000:]}")
    marker.write_text(pins)
    return folder
