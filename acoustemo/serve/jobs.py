"""Answering one upload, and the board of uploads answered in the background (POST /api/jobs).

The predictor is injected — `predictor(media_path, subtitles_path, speaker, plot_path, progress) -> dict` (the
`predict --json` dict, a clip's or a timeline's; it may write a PNG at `plot_path` and calls `progress(done, total)`
as a long recording's windows are answered). `run_predictor` turns its answer into the server's: the plot as a
data: URL, the names received, and no server path anywhere in it."""

from __future__ import annotations

import asyncio
import base64
import ctypes
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from acoustemo.errors import AcoustEmoError
from acoustemo.serve.uploads import Upload, UploadError, hide_path

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
Predictor = Callable[[Path, "Path | None", "str | None", Path, "Progress | None"], dict]


def run_predictor(predictor: Predictor, media: Upload, subtitles: Upload | None, speaker: str | None,
                  plot: Path, progress: Progress | None = None) -> dict:
    """The predictor's answer plus the plot as a data: URL and the upload's names, with no server path in it."""
    try:
        result = dict(predictor(media.path, subtitles.path if subtitles else None, speaker, plot, progress))
    except AcoustEmoError as e:
        _release_memory()
        raise UploadError(422, hide_path(str(e), media, subtitles)) from None
    except Exception:
        _release_memory()
        log.exception("prediction failed for %s", media.filename)
        raise UploadError(500, "the model failed on this file (an internal error; the server log has the "
                               "traceback)") from None
    _release_memory()
    result["plot"] = ("data:image/png;base64," + base64.b64encode(plot.read_bytes()).decode()
                      if plot.is_file() else None)
    result["upload"] = upload_names(media, subtitles, speaker)
    return json.loads(hide_path(json.dumps(result, ensure_ascii=False), media, subtitles))


def upload_names(media: Upload, subtitles: Upload | None, speaker: str | None) -> dict:
    return {"media": media.filename, "subtitles": subtitles.filename if subtitles else None, "speaker": speaker}


def _release_memory() -> None:
    """Hand the freed heap of a prediction back to the OS (glibc keeps it in per-thread arenas otherwise, so the
    server's memory would stay at its peak after a burst of uploads; benchmarks/serve_concurrency.py measures it)."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to do
        pass


# ------------------------------------------------------------------------------------------------------ jobs


@dataclass
class Job:
    """One upload answered in the background (POST /api/jobs); its state is read with GET /api/jobs/ID."""

    id: str
    upload: dict = field(default_factory=dict)  # the names received (set once the form is read), as in "upload"
    state: str = "queued"  # queued -> running -> done | error
    done: int = 0  # answers given so far (a long recording's windows x speakers)
    total: int = 0  # 0 until the recording is split into windows (a short clip stays at 0)
    result: dict | None = None
    error: str | None = None
    status: int = 200  # what POST /api/predict would have answered with
    finished_at: float | None = None  # time.monotonic()
    task: asyncio.Task | None = field(default=None, repr=False)  # held so the event loop does not drop it

    def progress(self, done: int, total: int) -> None:
        """Called from the model's worker thread: plain int stores, read by the event loop."""
        self.total, self.done = total, done

    def to_json(self, ahead: int) -> dict:
        out = {"job": self.id, "url": f"/api/jobs/{self.id}", "state": self.state, "done": self.done,
               "total": self.total, "ahead": ahead, "upload": self.upload}
        if self.state == "done":
            out["result"] = self.result
        if self.state == "error":
            out["error"], out["status"] = self.error, self.status
        return out


class JobBoard:
    """The jobs of one server, oldest first. At most `max_jobs` unfinished (each holds an upload on disk); a
    finished one is kept `ttl_s` seconds for its page to read, and at most `max_kept` of them, so memory does not
    grow with the number of uploads."""

    def __init__(self, max_jobs: int = 4, ttl_s: float = 600.0, max_kept: int = 16):
        if max_jobs < 1 or ttl_s <= 0 or max_kept < 1:
            raise ValueError(f"need max_jobs >= 1, ttl_s > 0, max_kept >= 1; got {max_jobs}, {ttl_s}, {max_kept}")
        self.max_jobs, self.ttl_s, self.max_kept = max_jobs, ttl_s, max_kept
        self.jobs: dict[str, Job] = {}

    def unfinished(self) -> list[Job]:
        return [j for j in self.jobs.values() if j.finished_at is None]

    def open(self) -> Job:
        """A new queued job, before its upload is read (so the limit bounds the disk too); UploadError(503) when
        `max_jobs` are already unfinished."""
        self.sweep()
        busy = self.unfinished()
        if len(busy) >= self.max_jobs:
            raise UploadError(503, f"the server is already working on {len(busy)} uploads (its limit); try again "
                                   "when one has finished")
        job = Job(secrets.token_urlsafe(16))
        self.jobs[job.id] = job
        return job

    def finish(self, job: Job) -> None:
        job.finished_at = time.monotonic()

    def drop(self, job: Job) -> None:
        self.jobs.pop(job.id, None)

    def ahead(self, job: Job) -> int:
        """Unfinished jobs posted before this one (the model answers them in order)."""
        if job.finished_at is not None:
            return 0
        ids = list(self.jobs)
        return sum(1 for i in ids[: ids.index(job.id)] if self.jobs[i].finished_at is None)

    def sweep(self) -> None:
        """Forget finished jobs older than ttl_s, then the oldest finished beyond max_kept."""
        now = time.monotonic()
        finished = [j for j in self.jobs.values() if j.finished_at is not None]
        for j in finished:
            if now - j.finished_at > self.ttl_s:
                self.drop(j)
        finished = [j for j in finished if j.id in self.jobs]
        for j in sorted(finished, key=lambda j: j.finished_at)[: max(0, len(finished) - self.max_kept)]:
            self.drop(j)

