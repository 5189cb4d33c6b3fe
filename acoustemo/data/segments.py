"""Utterances and clips: the records everything else is built on (times in seconds)."""

from __future__ import annotations

from dataclasses import dataclass, field, asdict


@dataclass
class Utterance:
    start_s: float
    end_s: float
    speaker: str = ""
    text: str = ""

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def to_json(self) -> dict:
        return {"start": round(self.start_s, 3), "end": round(self.end_s, 3), "speaker": self.speaker, "text": self.text}

    @classmethod
    def from_json(cls, d: dict) -> "Utterance":
        return cls(float(d["start"]), float(d["end"]), str(d.get("speaker") or ""), str(d.get("text") or ""))


@dataclass
class Clip:
    """One manifest line: a media file, its utterances and (for training/eval) the gold answer.

    `media` is an absolute path once read from a manifest. `timestamps_source` says where the
    utterance times came from: "manifest", "subtitles", "vad", "asr" or "aligned". `custom` holds the manifest
    line's own metadata (keys acoustemo does not use, such as a corpus' `mood` column), carried through untouched.
    """

    id: str
    media: str
    utterances: list[Utterance] = field(default_factory=list)
    target_speaker: str | None = None
    labels: list[str] = field(default_factory=list)
    description: str = ""
    timestamps_source: str = "manifest"
    custom: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        d = asdict(self)
        d["utterances"] = [u.to_json() for u in self.utterances]
        return d
