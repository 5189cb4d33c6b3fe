"""The local web demo: upload a video or audio file (and subtitles), see the emotions, the explanation, the
utterances and the timeline plot; a recording longer than one context window comes back as an emotion timeline
per speaker (acoustemo.timeline), with its progress while it works.

Two ways in, one pipeline:
- POST /api/jobs answers at once with a job id; the upload waits for the model in the background and
  GET /api/jobs/ID tells its state and progress, then holds the answer for `job_ttl_s` (the page uses this).
  At most `max_jobs` jobs are unfinished at once (uploads on disk); more are refused with 503.
- POST /api/predict holds the connection until the answer (for curl and scripts). At most `max_pending` of these
  uploads are on disk at once; the others wait before their body is read.

One module per job: `uploads` (what an upload must be), `jobs` (answering one upload, the job board), `app` (the
routes and the page), `server` (uvicorn, the loaded model, `serve`).
"""

from acoustemo.serve.app import create_app
from acoustemo.serve.jobs import Job, JobBoard, Predictor, Progress
from acoustemo.serve.server import DemoServer, make_server, model_predictor, serve
from acoustemo.serve.uploads import (Upload, UploadError, check_media, check_origin, check_subtitles,
                                     safe_filename, save_upload, sniff_media)

__all__ = ["DemoServer", "Job", "JobBoard", "Predictor", "Progress", "Upload", "UploadError", "check_media",
           "check_origin", "check_subtitles", "create_app", "make_server", "model_predictor", "safe_filename",
           "save_upload", "serve", "sniff_media"]
