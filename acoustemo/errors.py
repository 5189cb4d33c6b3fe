"""Errors a user can act on. Each message names the problem and the fix."""


class AcoustEmoError(Exception):
    """Base class: the CLI prints these as one clear line instead of a traceback."""


class MediaError(AcoustEmoError):
    """A media file cannot be used (missing, corrupt, no audio stream, unsupported)."""


class SubtitleError(AcoustEmoError):
    """A subtitle file or cue breaks a rule that cannot be repaired safely."""


class ManifestError(AcoustEmoError):
    """A manifest has one or more problems (all are listed, with line numbers)."""


class EncoderError(AcoustEmoError):
    """Unknown encoder, missing weights or an encoder that cannot run here."""


class ConfigError(AcoustEmoError):
    """A config or checkpoint that does not fit (wrong values, other config)."""
