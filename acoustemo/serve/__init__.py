"""The local web demo (acoustemo.serve.app)."""

from acoustemo.serve.app import make_server, model_predictor, safe_filename, save_upload, serve  # noqa: F401
