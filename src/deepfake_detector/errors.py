"""The project's error types, under one base class: whatever raises one of them, the stage
runner and the CLI print its message as one line (no traceback). Each keeps the built-in base
it had before (``ValueError``, ``RuntimeError``), so older ``except`` clauses still match."""

from __future__ import annotations


class DeepfakeError(Exception):
    """An expected failure: the message says what is wrong and, where there is one, the fix."""


class ParamsError(DeepfakeError, ValueError):
    """params.yaml has problems; the message lists each with its key."""


class YAMLTooLarge(DeepfakeError, ValueError):
    """A YAML document refused before any Python object was built from it."""


class SourceError(DeepfakeError, RuntimeError):
    """A data source that cannot be used; the message names the problem and the fix."""


class DownloadError(DeepfakeError, RuntimeError):
    """A download that cannot succeed; the message says what to do."""


class ImageRejected(DeepfakeError):
    """A file that cannot be used as an image; ``reason`` is one of ``images.REASONS``."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


class VideoRejected(DeepfakeError):
    """A file that cannot be used as a video; ``reason`` is one of ``video.REASONS``."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


class UploadRejected(DeepfakeError):
    """The request breaks a limit or is not readable multipart: answer ``status`` with
    ``detail`` (and close the connection: the rest of the body is never read)."""

    def __init__(self, status: int, detail):
        super().__init__(detail)
        self.status, self.detail = status, detail
