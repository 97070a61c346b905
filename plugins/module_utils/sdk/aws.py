# Copyright: itsp.cluster engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""AWS through boto3: the one session and client factory and the one error translation that every
module talking to AWS uses (the amazon.aws module_utils/botocore.py pattern).

Clients get botocore's adaptive retries with ``total_max_attempts`` (the first try included, which
is what a person means by "attempts"), the shared connect/read timeouts, and an event hook that
counts every HTTP attempt, so a failure reports the attempts that really went out.
"""

from __future__ import annotations

from ansible_collections.itsp.cluster.plugins.module_utils.errors import CloudApiError
from ansible_collections.itsp.cluster.plugins.module_utils.sdk.common import (
    CONNECT_TIMEOUT,
    DEFAULT_MAX_ATTEMPTS,
    READ_TIMEOUT,
)

try:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        ReadTimeoutError,
    )
    from botocore.parsers import ResponseParserError

    HAS_BOTO3 = True
    BOTO3_IMPORT_ERROR = None
    API_ERRORS = (BotoCoreError, ClientError, ResponseParserError)
except ImportError as import_error:  # the modules report missing_required_lib("boto3")
    HAS_BOTO3 = False
    BOTO3_IMPORT_ERROR = import_error
    API_ERRORS = ()

PROVIDER = "aws"


def argument_spec():
    """The AWS options every module shares (doc fragment itsp.cluster.aws)."""
    return {
        "profile": {"type": "str", "aliases": ["aws_profile"]},
        "access_key": {"type": "str", "aliases": ["aws_access_key_id"], "no_log": False},
        "secret_key": {"type": "str", "aliases": ["aws_secret_access_key"], "no_log": True},
        "session_token": {"type": "str", "aliases": ["aws_session_token"], "no_log": True},
    }


AWS_OPTIONS = tuple(argument_spec())


def session(profile=None, access_key=None, secret_key=None, session_token=None):
    """One boto3 session; with no credentials given, boto3's own chain (environment, files, role)."""
    try:
        return boto3.session.Session(profile_name=profile, aws_access_key_id=access_key,
                                     aws_secret_access_key=secret_key, aws_session_token=session_token)
    except BotoCoreError as error:
        raise CloudApiError(PROVIDER, "boto3.session", f"profile {profile}", type(error).__name__,
                            f"{_first_line(error)}; check profile") from error


def client(service, region, aws_session, counter=None, endpoint_url=None, max_attempts=DEFAULT_MAX_ATTEMPTS,
           user_agent="itsp.cluster", region_option="region"):
    """A client with adaptive retries; every HTTP attempt is counted in ``counter`` (an ApiCallCounter)
    as ``<service>.<Operation>``. Build clients in one thread; the clients themselves are thread-safe."""
    config = Config(retries={"mode": "adaptive", "total_max_attempts": max_attempts},
                    connect_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT, user_agent_extra=user_agent)
    try:
        made = aws_session.client(service, region_name=region, endpoint_url=endpoint_url, config=config)
    except (BotoCoreError, ValueError) as error:
        option = region_option if "Region" in type(error).__name__ or not endpoint_url else "endpoint_url"
        raise CloudApiError(PROVIDER, f"{service}.client", region, type(error).__name__,
                            f"{_first_line(error)}; check {option}") from error
    if counter is not None:
        def sent(event_name, **_kwargs):
            counter.add(f"{service}.{event_name.rsplit('.', 1)[-1]}")

        def answered(event_name, **_kwargs):
            counter.answered(f"{service}.{event_name.rsplit('.', 1)[-1]}")

        made.meta.events.register(f"before-send.{service}", sent)
        made.meta.events.register(f"after-call.{service}", answered)
    return made


def translate(error, operation, scope, counter=None, endpoint_url=None):
    """The CloudApiError for any error a boto3 call raised, the cloud's own code kept."""
    attempts = max(counter.in_flight(operation) if counter is not None else 1, 1)
    where = f"endpoint_url {endpoint_url}" if endpoint_url else f"the {PROVIDER} endpoint of {scope}"
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        metadata = error.response.get("ResponseMetadata", {})
        return CloudApiError(PROVIDER, operation, scope, details.get("Code") or "Unknown",
                             details.get("Message") or _first_line(error),
                             http_status=metadata.get("HTTPStatusCode"),
                             attempts=metadata.get("RetryAttempts", attempts - 1) + 1)
    if isinstance(error, ResponseParserError):
        # Only the first line: the parser goes on to quote the whole body it choked on.
        return CloudApiError(PROVIDER, operation, scope, "MalformedResponse",
                             f"the answer from {where} is not an AWS API answer (not the XML or JSON the "
                             "service speaks); check endpoint_url", attempts=attempts)
    if isinstance(error, NoCredentialsError):
        return CloudApiError(PROVIDER, operation, scope, type(error).__name__,
                             "no AWS credentials found; set profile, or access_key and secret_key, or "
                             "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", attempts=attempts)
    if isinstance(error, (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError)):
        return CloudApiError(PROVIDER, operation, scope, type(error).__name__,
                             f"{_first_line(error)}; check {where}", attempts=attempts)
    return CloudApiError(PROVIDER, operation, scope, type(error).__name__, _first_line(error), attempts=attempts)


def _first_line(error):
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
