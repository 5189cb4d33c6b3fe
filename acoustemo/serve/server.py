"""The demo's server: uvicorn on a socket bound up front, the predictor it wraps around a loaded model, and
`serve`, which loads the model once and serves until interrupted (what `acoustemo serve` runs)."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import threading
from pathlib import Path

from acoustemo.errors import ConfigError
from acoustemo.serve.app import create_app
from acoustemo.serve.jobs import Predictor, Progress
from acoustemo.serve.uploads import LOOPBACK_HOSTS

log = logging.getLogger(__name__)


class DemoServer:
    """uvicorn on a socket bound up front (so port 0 has a real number before serving starts)."""

    def __init__(self, sock: socket.socket, predictor: Predictor, model_name: str, max_upload_bytes: int,
                 max_pending: int, max_queued: int, max_jobs: int = 4, job_ttl_s: float = 600.0):
        import uvicorn

        self.socket, self.server_address = sock, sock.getsockname()[:2]
        self.max_upload_bytes = max_upload_bytes
        self.app = create_app(predictor, model_name, max_upload_bytes, max_pending, max_queued,
                              bound_host=self.server_address[0], url=self.url, max_jobs=max_jobs,
                              job_ttl_s=job_ttl_s)
        config = uvicorn.Config(self.app, http="h11", loop="asyncio", lifespan="off", log_config=None,
                                access_log=False, timeout_graceful_shutdown=10)
        self._uvicorn = uvicorn.Server(config)
        self._stopped = threading.Event()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"

    def serve_forever(self) -> None:
        """Serve until `shutdown()` (or, in the main thread, Ctrl+C, which uvicorn re-raises once it has stopped)."""
        try:
            self._uvicorn.run(sockets=[self.socket])
        finally:
            self._stopped.set()

    def shutdown(self, timeout_s: float = 30) -> None:
        self._uvicorn.should_exit = True
        self._stopped.wait(timeout_s)

    def server_close(self) -> None:
        self.socket.close()


def make_server(predictor: Predictor, host: str = "127.0.0.1", port: int = 8000, max_upload_mb: float = 200,
                model_name: str = "", max_pending: int = 4, max_queued: int = 64, max_jobs: int = 4,
                job_ttl_s: float = 600.0) -> DemoServer:
    """A bound server (port 0 = any free port); call `serve_forever()` (or run it in a thread)."""
    if max_upload_mb <= 0:
        raise ValueError(f"max_upload_mb must be positive, got {max_upload_mb}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family)
    return DemoServer(sock, predictor, model_name, int(max_upload_mb * 2**20), max_pending, max_queued, max_jobs,
                      job_ttl_s)


def model_predictor(predictor, config=None) -> Predictor:
    """The server's predictor for a loaded model (`acoustemo.predictor.Predictor`): `predict_media`, as the CLI's
    `predict` runs it, so the library's own splitting decides: a dialogue that fits one context window gets the
    clip's answer and its plot (with the Q-Former's attention), a longer one the timeline (`config`, an
    `acoustemo.timeline.TimelineConfig`) and the one-lane-per-speaker plot. A failed plot costs a warning, not the
    answer.

    Clips are named by content ("upload-<sha256 prefix>"), so features cached for one upload never overwrite a
    training clip's, and uploading the same file again (say, with other subtitles) reuses them."""
    from acoustemo.data.media import open_media
    from acoustemo.plot import plot_prediction, plot_recording_timeline
    from acoustemo.timeline import Timeline, TimelineConfig, predict_media

    config = config or TimelineConfig()

    def predict(media: Path, subtitles: Path | None, speaker: str | None, plot_path: Path,
                progress: Progress | None = None) -> dict:
        opened = open_media(media)  # probed, hashed and decoded once, for the answer and the plot
        clip_id = "upload-" + opened.sha256[:16]
        answer = predict_media(opened, subtitles, speaker, model=predictor, config=config, progress=progress,
                               clip_id=clip_id)
        result = answer.to_json()
        try:
            if isinstance(answer, Timeline):
                result["media"] = media.name  # the upload's name, not the server's temporary path
                plot_recording_timeline(plot_path, answer)
            else:
                plot_prediction(plot_path, opened, answer, predictor, speaker)
        except Exception as e:  # the answer is still worth showing
            log.exception("timeline plot failed for %s", media.name)
            result.setdefault("warnings", []).append(f"the timeline plot could not be drawn: {e}")
        return result

    return predict


def serve(model_dir: str | os.PathLike, host: str = "127.0.0.1", port: int = 8000, max_upload_mb: float = 200,
          cache_dir: str | os.PathLike | None = None, device: str | None = None, timeline=None) -> None:
    """Load the model once, then serve until interrupted. `timeline` (an acoustemo.timeline.TimelineConfig)
    splits recordings longer than one context window, as `predict --max-span/--context` does.

    Features of uploads are cached in a temporary folder deleted at exit (unless `cache_dir` is given), so nothing
    derived from an upload outlives the server."""
    from acoustemo.predictor import load_predictor

    own_cache = cache_dir is None
    cache = Path(tempfile.mkdtemp(prefix="acoustemo-serve-cache-")) if own_cache else Path(cache_dir)
    try:
        log.info("loading the model from %s", model_dir)
        predictor = load_predictor(model_dir, cache, device)
        try:
            server = make_server(model_predictor(predictor, timeline), host, port, max_upload_mb,
                                 model_name=str(predictor.model_dir))
        except OSError as e:
            raise ConfigError(f"cannot listen on {host}:{port} ({e.strerror}); is another server using the port? "
                              "try --port 0 (any free port) or another one") from None
        if host not in LOOPBACK_HOSTS:
            log.warning("serving on %s: anyone who can reach this address can upload files and run the model", host)
        print(f"AcoustEmo demo at {server.url} (Ctrl+C to stop; the API is described at {server.url}docs)",
              flush=True)
        try:
            server.serve_forever()
        finally:
            server.server_close()
    finally:
        if own_cache:
            shutil.rmtree(cache, ignore_errors=True)
