"""Manifests from a folder of media files, or from the field's CSVs (EMER-Fine, OV-MER label files).

prepare_folder: every media file (recursively) is a clip; a subtitle file with the same stem beside it
(.srt > .vtt > .json > .txt) is referenced as `subtitles`, so the manifest stays in step with the file.
Clips without subtitles get no utterances: VAD + ASR fill them at extraction / prediction time
(segmentation.ensure_utterances), or now with segment=True, which writes the times into the manifest.

prepare_csv: joins CSVs by `name`: descriptions (`name, chinese, english`), labels (`name, openset` with the
openset a Python-list string), subtitles (`name, english` | `name, sentence` | `name, chinese, english`).
MER-style clips hold one utterance, so a subtitle sentence becomes one utterance spanning the whole clip.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from acoustemo.data.manifest import write_manifest
from acoustemo.data.media import MEDIA_EXTENSIONS, probe
from acoustemo.data.segments import Clip, Utterance
from acoustemo.data.subtitles import SUBTITLE_EXTENSIONS
from acoustemo.errors import ManifestError
from acoustemo.evaluate.parsing import normalize_labels, parse_list_string


@dataclass
class PrepareReport:
    manifest: Path
    clips: int
    missing_media: list[str] = field(default_factory=list)   # names in a CSV with no media file
    missing_labels: list[str] = field(default_factory=list)  # clips written without labels
    without_subtitles: list[str] = field(default_factory=list)  # clips whose utterances come from VAD + ASR
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"wrote {self.clips} clip(s) to {self.manifest}"]
        if self.missing_media:
            parts.append(f"{len(self.missing_media)} name(s) without media skipped: {_preview(self.missing_media)}")
        if self.missing_labels:
            parts.append(f"{len(self.missing_labels)} clip(s) without labels: {_preview(self.missing_labels)}")
        if self.without_subtitles:
            parts.append(f"{len(self.without_subtitles)} clip(s) without subtitles (VAD + ASR): {_preview(self.without_subtitles)}")
        return "; ".join(parts)


def _preview(names: list[str], n: int = 5) -> str:
    return ", ".join(names[:n]) + (f" (+{len(names) - n} more)" if len(names) > n else "")


def find_media(folder: str | Path) -> dict[str, Path]:
    """Media files under `folder` by id (path without extension, relative to folder, with '/')."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ManifestError(f"{folder}: not a folder; give the folder that holds the media files")
    found: dict[str, list[Path]] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix.lower() in MEDIA_EXTENSIONS:
            found.setdefault(path.relative_to(folder).with_suffix("").as_posix(), []).append(path)
    clashes = {k: v for k, v in found.items() if len(v) > 1}
    if clashes:
        listing = "; ".join(", ".join(p.name for p in v) for v in clashes.values())
        raise ManifestError(f"{folder}: several media files share a name ({listing}); keep one file per clip name")
    return {k: v[0] for k, v in found.items()}


def prepare_folder(folder: str | Path, out_manifest: str | Path, segment: bool = False) -> PrepareReport:
    """A manifest for every media file in `folder`, with same-stem subtitles referenced when present."""
    from acoustemo.data.segmentation import utterances_for

    out_manifest = Path(out_manifest)
    root = out_manifest.resolve().parent
    clips, extra, report = [], {}, PrepareReport(out_manifest, 0)
    for clip_id, media in find_media(folder).items():
        subs = [media.with_suffix(ext) for ext in SUBTITLE_EXTENSIONS if media.with_suffix(ext).is_file()]
        clip = Clip(id=clip_id, media=str(media.resolve()), timestamps_source="none")
        if len(subs) > 1:
            report.warnings.append(f"{clip_id}: several subtitle files ({', '.join(p.name for p in subs)}); using {subs[0].name}")
        if subs:
            extra[clip_id] = {"subtitles": str(Path(_relpath(subs[0].resolve(), root)))}
        else:
            report.without_subtitles.append(clip_id)
            if segment:
                clip.utterances, clip.timestamps_source, warnings = utterances_for(media)
                report.warnings += warnings
        clips.append(clip)
    if not clips:
        raise ManifestError(f"{folder}: no media files found (looked for {', '.join(MEDIA_EXTENSIONS)})")
    write_manifest(out_manifest, clips, extra)
    report.clips = len(clips)
    return report


def _relpath(path: Path, root: Path) -> str:
    import os

    return os.path.relpath(path, root)


def read_csv(path: str | Path, need: tuple[str, ...], one_of: tuple[str, ...] = ()) -> dict[str, dict]:
    """Rows keyed by `name`; checks the columns and reports duplicate names."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: CSV file not found")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in ("name",) + need if c not in columns]
        if missing or (one_of and not any(c in columns for c in one_of)):
            wanted = ", ".join(("name",) + need) + (f" and one of {', '.join(one_of)}" if one_of else "")
            raise ManifestError(f"{path}: needs columns {wanted}; found {', '.join(columns) or 'none'}")
        rows: dict[str, dict] = {}
        for line_no, row in enumerate(reader, start=2):
            row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
            if row["name"] in rows:
                raise ManifestError(f"{path}: line {line_no}: name '{row['name']}' appears twice; keep one row per name")
            rows[row["name"]] = row
    return rows


def parse_openset(text: str) -> list[str]:
    """An `openset` cell ("['happy', 'relaxed']") -> lowercased labels, read by the evaluator's parser (the field's
    `string_to_list`), so a manifest's gold labels are exactly the ones `acoustemo evaluate` scores against."""
    return normalize_labels(parse_list_string(text))


def prepare_csv(media_dir: str | Path, out_manifest: str | Path, descriptions: str | Path | None = None,
                labels: str | Path | None = None, subtitles: str | Path | None = None) -> PrepareReport:
    """Join the field's CSVs by `name` with media files `media_dir/<name>.<ext>`; write the manifest."""
    desc_rows = read_csv(descriptions, ("english",)) if descriptions else {}
    label_rows = read_csv(labels, ("openset",)) if labels else {}
    sub_rows = read_csv(subtitles, (), one_of=("english", "sentence", "chinese")) if subtitles else {}
    names = sorted(set(desc_rows) | set(label_rows) | set(sub_rows))
    if not names:
        raise ManifestError("no names to prepare: give at least one of descriptions, labels or subtitles CSVs with rows")
    media = _by_name(find_media(media_dir))
    report, clips = PrepareReport(Path(out_manifest), 0), []
    for name in names:
        if name not in media:
            report.missing_media.append(name)
            continue
        clip = Clip(id=name, media=str(media[name].resolve()), labels=parse_openset(label_rows.get(name, {}).get("openset", "")),
                    description=desc_rows.get(name, {}).get("english") or desc_rows.get(name, {}).get("chinese", ""),
                    timestamps_source="none")
        if not clip.labels:
            report.missing_labels.append(name)
        sentence = _sentence(sub_rows.get(name))
        if sentence:
            clip.utterances = [Utterance(0.0, probe(media[name]).duration_s, "", sentence)]
            clip.timestamps_source = "manifest"
        clips.append(clip)
    if not clips:
        raise ManifestError(f"{media_dir}: none of the {len(names)} names has a media file ({_preview(names)}); check the folder")
    write_manifest(out_manifest, clips)
    report.clips = len(clips)
    return report


def _by_name(media: dict[str, Path]) -> dict[str, Path]:
    """CSV names are bare file stems: key media by stem, refusing stems found in two subfolders."""
    by_name: dict[str, Path] = {}
    for clip_id, path in media.items():
        name = clip_id.rsplit("/", 1)[-1]
        if name in by_name:
            raise ManifestError(f"media name '{name}' is in two places ({by_name[name]}, {path}); CSV names must be unique")
        by_name[name] = path
    return by_name


def _sentence(row: dict | None) -> str:
    if not row:
        return ""
    return row.get("english") or row.get("sentence") or row.get("chinese") or ""
