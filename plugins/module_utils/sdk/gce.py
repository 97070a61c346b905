# Copyright: itsp.cluster engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Google Compute Engine through google-cloud-compute: the one credentials and client factory, the
one retry policy and the one error translation that every module talking to GCE uses.

Credentials follow ``auth_kind`` and nothing else: an endpoint never changes them (V(anonymous) is
for a local stand-in and must be asked for). Retries count attempts, not seconds, so max_attempts
means the same as for AWS.
"""

from __future__ import annotations

import json
import re

from ansible_collections.itsp.cluster.plugins.module_utils.errors import CloudApiError
from ansible_collections.itsp.cluster.plugins.module_utils.sdk.common import (
    BACKOFF_INITIAL,
    BACKOFF_MAXIMUM,
    DEFAULT_MAX_ATTEMPTS,
    READ_TIMEOUT,
)

try:
    import google.auth
    import requests
    from google.api_core import exceptions as api_exceptions
    from google.api_core import retry as api_retry
    from google.auth import credentials as auth_credentials
    from google.auth import exceptions as auth_exceptions
    from google.oauth2 import service_account
    from google.protobuf import json_format

    HAS_GOOGLE = True
    GOOGLE_IMPORT_ERROR = None
    API_ERRORS = (api_exceptions.GoogleAPIError, auth_exceptions.GoogleAuthError, json_format.ParseError,
                  requests.exceptions.RequestException, UnicodeDecodeError, ValueError)
except ImportError as import_error:  # the modules report missing_required_lib("google-cloud-compute")
    HAS_GOOGLE = False
    GOOGLE_IMPORT_ERROR = import_error
    API_ERRORS = ()

PROVIDER = "gce"
# Seconds one HTTP attempt may take (requests applies it to the connection and to the answer).
REQUEST_TIMEOUT = float(READ_TIMEOUT)
OP_CREDENTIALS = "google.auth"
SCOPES = ("https://www.googleapis.com/auth/compute.readonly",)
AUTH_KINDS = ("application", "serviceaccount", "anonymous")
# Compute answers API rate limits with 403 and one of these reasons, not only with 429.
RATE_LIMIT_REASONS = frozenset(("rateLimitExceeded", "userRateLimitExceeded"))
# HTTP status -> the google.rpc code name Compute puts in error.status, for answers that lack it.
STATUS_CODE_NAMES = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
    409: "ALREADY_EXISTS", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 502: "BAD_GATEWAY",
    503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED",
}
# Project ids (6-30 of a-z, 0-9, -) and the older domain-scoped ones (example.com:project).
PROJECT_ID = re.compile(r"^([a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$")


def argument_spec():
    """The GCE options every module shares (doc fragment itsp.cluster.gce)."""
    return {
        "project": {"type": "str"},
        "auth_kind": {"type": "str", "choices": list(AUTH_KINDS)},
        "service_account_file": {"type": "path"},
        "service_account_contents": {"type": "str", "no_log": True},
    }


GCE_OPTIONS = tuple(argument_spec())
REQUIRED_IF = [
    ("auth_kind", "serviceaccount", ["service_account_file", "service_account_contents"], True),
    ("auth_kind", "anonymous", ["endpoint_url"]),
]
MUTUALLY_EXCLUSIVE = [("service_account_file", "service_account_contents")]


def project_problem(project):
    if project is None or PROJECT_ID.match(str(project)):
        return None
    return f"project must be a GCE project id such as itsp-prod (6 to 30 of a-z, 0-9 and -), got {project!r}"


def credentials(auth_kind="application", service_account_file=None, service_account_contents=None):
    """google.auth credentials for the chosen auth_kind; anonymous is for local stand-ins only."""
    auth_kind = auth_kind or "application"
    try:
        if auth_kind == "anonymous":
            return auth_credentials.AnonymousCredentials()
        if auth_kind == "serviceaccount":
            if service_account_contents:
                info = json.loads(service_account_contents)
                return service_account.Credentials.from_service_account_info(info, scopes=SCOPES)
            return service_account.Credentials.from_service_account_file(service_account_file, scopes=SCOPES)
        found, _project = google.auth.default(scopes=SCOPES)
        return found
    except (auth_exceptions.GoogleAuthError, ValueError, OSError, AttributeError) as error:
        raise CloudApiError(PROVIDER, OP_CREDENTIALS, f"auth_kind {auth_kind}", type(error).__name__,
                            str(error).strip().splitlines()[0] if str(error).strip() else "no detail") from error


def client(client_class, creds, endpoint_url=None, transport="rest"):
    """A Compute client on the REST transport; ``endpoint_url`` replaces the public endpoint."""
    options = {"api_endpoint": endpoint_url} if endpoint_url else None
    try:
        return client_class(credentials=creds, transport=transport, client_options=options)
    except (ValueError, TypeError) as error:
        raise CloudApiError(PROVIDER, f"compute.{client_class.__name__}", endpoint_url or "compute.googleapis.com",
                            type(error).__name__, f"{error}; check endpoint_url") from error


class RetryBudget:
    """Retry predicate: throttling and transient 5xx are retried, at most ``max_attempts`` tries in all.

    google-api-core's Retry only knows a time budget; counting here gives the same "N attempts"
    knob as botocore, and a predicate that says no re-raises the cloud's own error."""

    def __init__(self, max_attempts):
        self.max_attempts = max_attempts
        self.failures = 0

    def __call__(self, error):
        self.failures += 1
        return self.failures < self.max_attempts and is_retryable(error)

    @property
    def attempts(self):
        return max(self.failures, 1)


def is_retryable(error):
    if isinstance(error, (api_exceptions.TooManyRequests, api_exceptions.ServiceUnavailable,
                          api_exceptions.InternalServerError, api_exceptions.BadGateway,
                          api_exceptions.GatewayTimeout)):
        return True
    if isinstance(error, api_exceptions.Forbidden):
        reasons = {item.get("reason") for item in error.errors if isinstance(item, dict)}
        return bool(reasons & RATE_LIMIT_REASONS)
    # No answer at all (refused, reset, timed out): worth another try like botocore does.
    return isinstance(error, (requests.exceptions.ConnectionError, requests.exceptions.Timeout))


def retry(max_attempts=DEFAULT_MAX_ATTEMPTS, initial=BACKOFF_INITIAL, maximum=BACKOFF_MAXIMUM, timeout=120.0):
    """(Retry, RetryBudget): the policy to pass as ``retry=`` and the counter of what it did."""
    budget = RetryBudget(max_attempts)
    return api_retry.Retry(predicate=budget, initial=initial, maximum=maximum, multiplier=2.0,
                           timeout=timeout), budget


def translate(error, operation, scope, budget=None, endpoint_url=None):
    """The CloudApiError for any error a Compute call raised, keeping Compute's own error.status."""
    attempts = budget.attempts if budget is not None else 1
    where = f"endpoint_url {endpoint_url}" if endpoint_url else "compute.googleapis.com"
    if isinstance(error, api_exceptions.RetryError):
        cause = error.cause if isinstance(error.cause, api_exceptions.GoogleAPICallError) else None
        if cause is None:
            return CloudApiError(PROVIDER, operation, scope, "DEADLINE_EXCEEDED", str(error), attempts=attempts)
        error = cause
    if isinstance(error, api_exceptions.GoogleAPICallError):
        code, message = None, None
        response = getattr(error, "response", None)
        if response is not None:
            try:
                body = response.json().get("error", {})
            except (ValueError, AttributeError):
                body = {}
            if isinstance(body, dict):
                code, message = body.get("status"), body.get("message")
        http_status = error.code if isinstance(error.code, int) else None
        code = code or STATUS_CODE_NAMES.get(http_status) or type(error).__name__
        return CloudApiError(PROVIDER, operation, scope, code, message or error.message,
                             http_status=http_status, attempts=attempts)
    if isinstance(error, (json_format.ParseError, UnicodeDecodeError)):
        return CloudApiError(PROVIDER, operation, scope, "MALFORMED_RESPONSE",
                             f"the answer from {where} is not a Compute API answer "
                             f"({type(error).__name__}); check endpoint_url", attempts=attempts)
    if isinstance(error, auth_exceptions.InvalidOperation):
        # The session refreshes credentials only after a 401; anonymous ones cannot be refreshed.
        return CloudApiError(PROVIDER, operation, scope, "UNAUTHENTICATED",
                             f"the endpoint wants credentials and auth_kind anonymous has none ({error})",
                             http_status=401, attempts=attempts)
    if isinstance(error, requests.exceptions.RequestException):
        return CloudApiError(PROVIDER, operation, scope, type(error).__name__,
                             f"{_first_line(error)}; check {where}", attempts=attempts)
    if isinstance(error, ValueError):
        return CloudApiError(PROVIDER, operation, scope, "INVALID_REQUEST",
                             f"the client refused the request ({_first_line(error)}); check project and zones",
                             attempts=attempts)
    return CloudApiError(PROVIDER, operation, scope, type(error).__name__, _first_line(error), attempts=attempts)


def _first_line(error):
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__
