# Copyright: itsp.cluster engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the per-cloud SDK layers (aws.py, gce.py) share: the request counter, endpoint checks and
the retry settings every module uses, so two modules against the same endpoint fail alike."""

from __future__ import annotations

import threading
from urllib.parse import urlsplit

# Tries per request, the first included, unless a module's max_attempts says otherwise.
DEFAULT_MAX_ATTEMPTS = 5
MAX_ATTEMPTS_LIMIT = 20
# Seconds to wait for a TCP connection, then for an answer, per attempt.
CONNECT_TIMEOUT = 5
READ_TIMEOUT = 30
# Exponential back-off between attempts (seconds): first wait, cap. Same numbers for both clouds.
BACKOFF_INITIAL = 0.5
BACKOFF_MAXIMUM = 8.0


class ApiCallCounter:
    """Counts requests sent per API operation, retries included; shared by worker threads.

    ``in_flight(operation)`` is the number of attempts of the request that is going on (reset when
    an answer is parsed), which is what a failure reports as its ``attempts``."""

    def __init__(self):
        self._counts = {}
        self._pending = {}
        self._lock = threading.Lock()

    def add(self, operation, count=1):
        with self._lock:
            self._counts[operation] = self._counts.get(operation, 0) + count
            self._pending[operation] = self._pending.get(operation, 0) + count

    def answered(self, operation):
        with self._lock:
            self._pending[operation] = 0

    def in_flight(self, operation):
        with self._lock:
            return self._pending.get(operation, 0)

    def as_dict(self):
        with self._lock:
            return dict(sorted(self._counts.items()))


def endpoint_problem(url, option="endpoint_url"):
    """Why ``url`` cannot be an API endpoint, in a sentence naming ``option``; None when it can."""
    if url is None:
        return None
    shape = (f"{option} must be an http:// or https:// URL with a host, such as https://compute.googleapis.com "
             f"or http://127.0.0.1:8780")
    text = str(url)
    if not text.strip() or any(ord(c) < 33 or c == "\x7f" for c in text):
        return f"{shape}; got {text!r}"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as error:
        return f"{shape}; got {text!r} ({error})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{shape}; got {text!r}"
    if port == 0:
        return f"{shape}; got {text!r} (port 0)"
    return None


def attempts_problem(value, option="max_attempts"):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ATTEMPTS_LIMIT:
        return f"{option} must be a whole number from 1 to {MAX_ATTEMPTS_LIMIT}, got {value!r}"
    return None


def argument_spec():
    """Endpoint and retries, the options every cloud module shares (doc fragment itsp.cluster.cloud_api)."""
    return {
        "endpoint_url": {"type": "str", "aliases": ["api_endpoint"]},
        "max_attempts": {"type": "int", "default": DEFAULT_MAX_ATTEMPTS},
    }
