"""Everything ``openpan.client`` raises, under one root.

    ClientError                      anything this package raises
    ├── TransportError               no usable HTTP answer: network failure, timeout, HTTP status
    │                                other than 200, or a body that is not the 123pan envelope
    ├── APIError                     the server answered with a non-zero ``code``
    │   ├── AuthenticationError      401: token missing, invalid, expired or retired; or the
    │   │                            server refused the clientID/secret (its own code kept)
    │   ├── RateLimitError           429: too many requests (already retried with backoff)
    │   ├── NotFoundError            5066: file, directory or task not found
    │   ├── TrafficExceededError     5113: the day's download traffic is spent
    │   └── StillVerifyingError      20103: the upload is still being verified
    ├── UploadError                  an upload could not be finished (a slice kept failing)
    ├── DownloadError                a download could not be finished or its md5 did not match
    ├── TaskFailed                   an offline download or copy task ended in failure
    └── WaitTimeout                  waiting for a task or an upload took longer than allowed

``APIError`` carries the server's ``code``, ``message`` and ``trace_id`` (``x-traceID``): quote
the trace ID when asking the operator of the server about a failure.
"""

from __future__ import annotations


class ClientError(Exception):
    """Root of every error raised by ``openpan.client``."""


class TransportError(ClientError):
    """The request got no usable answer (network, timeout, non-200 HTTP status, not JSON)."""

    def __init__(self, message: str, *, status_code: int | None = None, url: str = "") -> None:
        self.message = message
        self.status_code = status_code
        self.url = url
        super().__init__(message)


class APIError(ClientError):
    """The server refused the request: ``code`` is the 123pan error code (never 0)."""

    def __init__(self, code: int, message: str, trace_id: str = "") -> None:
        self.code = code
        self.message = message
        self.trace_id = trace_id
        text = f"{message} (code {code}"
        text += f", trace ID {trace_id})" if trace_id else ")"
        super().__init__(text)


class AuthenticationError(APIError):
    """401: the access token is missing, invalid, expired or retired, or the secret is wrong."""


class RateLimitError(APIError):
    """429: too many requests; raised only once the configured retries are spent."""


class NotFoundError(APIError):
    """5066: the file, directory or task does not exist (or belongs to someone else)."""


class TrafficExceededError(APIError):
    """5113: the day's self-use download traffic is spent."""


class StillVerifyingError(APIError):
    """20103: the uploaded file is still being verified; ask again in a second."""


class UploadError(ClientError):
    """An upload could not be finished; a resumable upload can be run again to continue."""


class DownloadError(ClientError):
    """A download could not be finished, or the bytes did not match the file's md5."""


class TaskFailed(ClientError):
    """An offline download or copy task ended with a failure status."""

    def __init__(self, message: str, *, task_id: int | str, reason: str = "") -> None:
        self.task_id = task_id
        self.reason = reason
        super().__init__(message)


class WaitTimeout(ClientError, TimeoutError):
    """Waiting for a task or an upload's verification took longer than the given timeout."""


_BY_CODE: dict[int, type[APIError]] = {
    401: AuthenticationError,
    429: RateLimitError,
    5066: NotFoundError,
    5113: TrafficExceededError,
    20103: StillVerifyingError,
}


def error_for(code: int, message: str, trace_id: str = "") -> APIError:
    """The exception for an envelope's ``code`` (``APIError`` itself for codes without a class)."""
    return _BY_CODE.get(code, APIError)(code, message, trace_id)
