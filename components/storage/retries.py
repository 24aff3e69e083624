"""Errors of storage calls: which are transient (retried with exponential backoff), and the one sentence a
permanent one becomes (a missing bucket, refused credentials)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from components.core.errors import StarError
from components.storage.config import StorageConfig

T = TypeVar("T")

_TRANSIENT_CODES = {
    "InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "RequestTimeTooSkewed", "Throttling",
    "ThrottlingException", "BadDigest", "IncompleteBody", "XAmzContentSHA256Mismatch", "InvalidChunkSizeError",
}


class Transient(Exception):
    """An error worth retrying: the same request may well succeed in a moment."""


class ChecksumMismatch(Transient):
    """A downloaded file does not match its manifest (a truncated or damaged transfer): downloaded again."""


def is_transient(e: BaseException) -> bool:
    """5xx replies, throttling, dropped connections, timeouts and truncated bodies; not missing objects,
    missing buckets, refused credentials or bad requests. Wrapped errors (boto3's S3UploadFailedError wraps
    the ClientError it caught) are judged by what they wrap."""
    inner = e.__cause__ or e.__context__
    return _is_transient_here(e) or (inner is not None and is_transient(inner))


def _is_transient_here(e: BaseException) -> bool:
    if isinstance(e, Transient | ConnectionError | TimeoutError):
        return True
    try:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, ParamValidationError
    except ImportError:  # pragma: no cover - boto3 is a dependency
        return False
    if isinstance(e, ClientError):
        code = str(e.response.get("Error", {}).get("Code", ""))
        status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        return status >= 500 or code in _TRANSIENT_CODES
    if isinstance(e, NoCredentialsError | ParamValidationError):
        return False
    if isinstance(e, BotoCoreError):  # connection closed/reset, read timeout, response streaming errors
        from botocore.exceptions import (
            ConnectionError as BotoConnectionError,
        )
        from botocore.exceptions import (
            HTTPClientError,
            IncompleteReadError,
            ResponseStreamingError,
        )

        return isinstance(e, BotoConnectionError | HTTPClientError | IncompleteReadError | ResponseStreamingError)
    try:
        from urllib3.exceptions import HTTPError as Urllib3Error
    except ImportError:  # pragma: no cover
        return False
    return isinstance(e, Urllib3Error)


def with_retries(fn: Callable[[], T], what: str, config: StorageConfig, sleep: Callable[[float], None] = time.sleep
                 ) -> T:
    """`fn()` retried on transient errors, doubling the wait (with jitter) up to `max_backoff_seconds`."""
    for attempt in range(1, config.attempts + 1):
        try:
            return fn()
        except Exception as e:
            if not is_transient(e):
                raise
            if attempt == config.attempts:
                raise StarError(f"{what} still failed after {config.attempts} attempts ({describe_error(e)}); the "
                                "storage service is unreachable or unhealthy. Nothing finished was lost: run "
                                "again, or raise storage.attempts.") from e
            wait = min(config.max_backoff_seconds, config.backoff_seconds * 2 ** (attempt - 1))
            sleep(wait * (0.5 + random.random() / 2))
    raise AssertionError("unreachable")  # pragma: no cover


def describe_error(e: BaseException) -> str:
    """An error's own message, shortened to fit in a sentence."""
    text = str(e).strip() or type(e).__name__
    return text if len(text) < 300 else text[:300] + "…"


def friendly_error(e: Exception, url: str) -> Exception:
    """Permanent storage errors as one sentence naming what to fix (other errors are returned as they are)."""
    try:
        from botocore.exceptions import ClientError, NoCredentialsError
    except ImportError:  # pragma: no cover
        return e
    if isinstance(e, NoCredentialsError):
        return StarError(f"No credentials to reach {url}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or "
                         "AWS_PROFILE, or give the pod a role) in the environment.")
    if isinstance(e, ClientError):
        code = str(e.response.get("Error", {}).get("Code", ""))
        if code in ("NoSuchBucket",):
            return StarError(f"The bucket of {url} does not exist; create it or fix the URL.")
        if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "AllAccessDisabled"):
            return StarError(f"Access to {url} was refused ({code}); check the credentials in the environment "
                             "and the bucket's policy.")
        return StarError(f"{url}: {code or 'error'} ({describe_error(e)}).")
    return e


def call(fn: Callable[[], T], what: str, url: str, config: StorageConfig) -> T:
    """`fn()` (one operation of a store on `url`) with retries; a permanent error is raised as its sentence."""
    try:
        return with_retries(fn, what, config)
    except StarError:
        raise
    except Exception as e:
        friendly = friendly_error(e, url)
        if friendly is e:
            raise
        raise friendly from e
