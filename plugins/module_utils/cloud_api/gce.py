# Copyright: itsp.cluster engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""GCE instance discovery from the controller: one instances.aggregatedList walk for all zones.

The client uses the REST transport; every HTTP attempt (pages and retries) passes through an
interceptor that counts it, so `api_calls` matches what the server saw.
"""

from __future__ import annotations

import functools
import json

from ansible_collections.itsp.cluster.plugins.module_utils.cloud_api.common import CloudApiError
from ansible_collections.itsp.cluster.plugins.module_utils.cloud_api.records import (
    make_interface,
    make_record,
)

try:
    import google.auth
    import requests
    from google.api_core import exceptions as api_exceptions
    from google.api_core import retry as api_retry
    from google.auth import credentials as auth_credentials
    from google.auth import exceptions as auth_exceptions
    from google.cloud import compute_v1
    from google.cloud.compute_v1.services.instances.transports.rest import (
        InstancesRestInterceptor,
        InstancesRestTransport,
    )
    from google.oauth2 import service_account
    from google.protobuf import json_format

    HAS_GOOGLE_COMPUTE = True
    GOOGLE_COMPUTE_IMPORT_ERROR = None
except ImportError as import_error:  # pragma: no cover - exercised by the module's missing-lib test
    HAS_GOOGLE_COMPUTE = False
    GOOGLE_COMPUTE_IMPORT_ERROR = import_error
    InstancesRestInterceptor = object

PROVIDER = "gce"
OP_AGGREGATED_LIST = "compute.instances.aggregatedList"
OP_CREDENTIALS = "google.auth"
SCOPES = ("https://www.googleapis.com/auth/compute.readonly",)
PAGE_SIZE_MAX = 500
# Compute answers API rate limits with 403 and one of these reasons, not only with 429.
RATE_LIMIT_REASONS = frozenset(("rateLimitExceeded", "userRateLimitExceeded"))
# HTTP status -> the google.rpc code name Compute puts in error.status, for answers that lack it.
STATUS_CODE_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


class CountingInterceptor(InstancesRestInterceptor):
    """Counts each aggregatedList HTTP attempt; the retry wrapper calls the transport per attempt."""

    def __init__(self, counter):
        super().__init__()
        self._counter = counter

    def pre_aggregated_list(self, request, metadata):
        self._counter.add(OP_AGGREGATED_LIST)
        return request, metadata


def gce_credentials(auth_kind="application", service_account_file=None, service_account_contents=None):
    """google.auth credentials for the chosen auth_kind; anonymous is for local stand-ins only."""
    try:
        if auth_kind == "anonymous":
            return auth_credentials.AnonymousCredentials()
        if auth_kind == "serviceaccount":
            if service_account_contents:
                info = json.loads(service_account_contents)
                return service_account.Credentials.from_service_account_info(info, scopes=SCOPES)
            return service_account.Credentials.from_service_account_file(service_account_file, scopes=SCOPES)
        credentials, _project = google.auth.default(scopes=SCOPES)
        return credentials
    except (auth_exceptions.GoogleAuthError, ValueError, OSError) as error:
        raise CloudApiError(PROVIDER, OP_CREDENTIALS, f"auth_kind {auth_kind}", type(error).__name__,
                            str(error)) from error


def instances_client(credentials, counter, api_endpoint=None):
    client_options = {"api_endpoint": api_endpoint} if api_endpoint else None
    transport = functools.partial(InstancesRestTransport, interceptor=CountingInterceptor(counter))
    return compute_v1.InstancesClient(credentials=credentials, transport=transport,
                                      client_options=client_options)


class RetryBudget:
    """Retry predicate: throttling and transient 5xx are retried, at most `max_attempts` tries in all.

    google-api-core's Retry only knows a time budget; counting here gives the same
    "N attempts" knob as botocore, and a predicate that says no re-raises the cloud's own error.
    """

    def __init__(self, max_attempts):
        self.max_attempts = max_attempts
        self.failures = 0

    def __call__(self, error):
        self.failures += 1
        return self.failures < self.max_attempts and is_retryable(error)


def is_retryable(error):
    if isinstance(error, (api_exceptions.TooManyRequests, api_exceptions.ServiceUnavailable,
                          api_exceptions.InternalServerError, api_exceptions.GatewayTimeout)):
        return True
    if isinstance(error, api_exceptions.Forbidden):
        reasons = {item.get("reason") for item in error.errors if isinstance(item, dict)}
        return bool(reasons & RATE_LIMIT_REASONS)
    return False


def build_filter(filters=None, labels=None, instance_ids=None):
    """Module options -> one Compute filter expression (AND of terms; a list value is an OR)."""
    terms = []
    for field, value in sorted((filters or {}).items()):
        terms.append(_term(str(field), value))
    for key, value in sorted((labels or {}).items()):
        terms.append(_term(f"labels.{key}", value))
    if instance_ids:
        terms.append(_term("id", list(instance_ids)))
    return " AND ".join(terms)


def _term(field, value):
    values = value if isinstance(value, (list, tuple)) else [value]
    parts = [f'{field} = "{_quote(item)}"' for item in values]
    return "(" + " OR ".join(parts) + ")"


def _quote(value):
    return str(value).replace("\\", "\\\\").replace('"', '\\"')


def aggregated_list(client, project, filter_expression="", page_size=PAGE_SIZE_MAX, max_attempts=5,
                    retry_initial=0.5, retry_maximum=10.0, retry_timeout=120.0):
    """(zone, instance dict) for every instance, walking all pages of instances.aggregatedList."""
    budget = RetryBudget(max_attempts)
    retry = api_retry.Retry(predicate=budget, initial=retry_initial, maximum=retry_maximum,
                            multiplier=2.0, timeout=retry_timeout)
    request = compute_v1.AggregatedListInstancesRequest(project=project, max_results=page_size)
    if filter_expression:
        request.filter = filter_expression
    found = []
    try:
        pager = client.aggregated_list(request=request, retry=retry)
        for scope, scoped_list in pager:
            zone = scope.rpartition("/")[2] if scope.startswith("zones/") else None
            for instance in scoped_list.instances:
                found.append((zone, compute_v1.Instance.to_dict(instance, preserving_proto_field_name=False)))
    except api_exceptions.RetryError as error:
        cause = error.cause if isinstance(error.cause, api_exceptions.GoogleAPICallError) else None
        if cause is None:
            raise CloudApiError(PROVIDER, OP_AGGREGATED_LIST, f"project {project}", "DEADLINE_EXCEEDED",
                                str(error), attempts=max(budget.failures, 1)) from error
        raise _api_error(project, cause, budget.failures) from error
    except api_exceptions.GoogleAPICallError as error:
        raise _api_error(project, error, budget.failures) from error
    except json_format.ParseError as error:
        raise CloudApiError(PROVIDER, OP_AGGREGATED_LIST, f"project {project}", "MALFORMED_RESPONSE",
                            f"the answer is not a Compute InstanceAggregatedList: {error}",
                            attempts=max(budget.failures, 1)) from error
    except requests.exceptions.RequestException as error:
        raise CloudApiError(PROVIDER, OP_AGGREGATED_LIST, f"project {project}", type(error).__name__,
                            str(error), attempts=max(budget.failures, 1)) from error
    except auth_exceptions.InvalidOperation as error:
        # The session refreshes credentials only after a 401; anonymous ones cannot be refreshed.
        raise CloudApiError(PROVIDER, OP_AGGREGATED_LIST, f"project {project}", "UNAUTHENTICATED",
                            f"the endpoint wants credentials and auth_kind anonymous has none ({error})",
                            http_status=401, attempts=max(budget.failures, 1)) from error
    except auth_exceptions.GoogleAuthError as error:
        raise CloudApiError(PROVIDER, OP_AGGREGATED_LIST, f"project {project}", type(error).__name__,
                            str(error), attempts=max(budget.failures, 1)) from error
    return found


def _api_error(project, error, attempts):
    """Keep Compute's own error.status (PERMISSION_DENIED…) and message, without the URL prefix."""
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
    return CloudApiError(PROVIDER, OP_AGGREGATED_LIST, f"project {project}", code, message or error.message,
                         http_status=http_status, attempts=max(attempts, 1))


def _last_segment(url):
    return url.rstrip("/").rpartition("/")[2] if url else None


def _region_of(zone):
    return zone.rpartition("-")[0] if zone else None


def normalize_instance(instance, zone=None):
    """One Compute Instance resource (REST JSON names) -> the normalized record.

    The Compute API does not expose MAC addresses, so `mac` is null; match on-host data by address.
    """
    zone = zone or _last_segment(instance.get("zone"))
    interfaces = []
    for nic in instance.get("networkInterfaces") or []:
        public_ip = next(
            (config.get("natIP") for config in nic.get("accessConfigs") or []
             if config.get("type", "ONE_TO_ONE_NAT") == "ONE_TO_ONE_NAT" and config.get("natIP")),
            None,
        )
        ipv6 = [nic.get("ipv6Address")]
        ipv6 += [config.get("externalIpv6") for config in nic.get("ipv6AccessConfigs") or []]
        interfaces.append(make_interface(nic.get("name"), None, nic.get("networkIP"), public_ip, ipv6))
    return make_record(
        provider=PROVIDER,
        region=_region_of(zone),
        zone=zone,
        instance_id=str(instance.get("id") or instance.get("name")),
        instance_type=_last_segment(instance.get("machineType")),
        name=instance.get("name"),
        state=(instance.get("status") or "").lower() or None,
        interfaces=interfaces,
    )


def discover(project, counter, zones=None, filters=None, labels=None, instance_ids=None,
             page_size=PAGE_SIZE_MAX, max_attempts=5, auth_kind="application", service_account_file=None,
             service_account_contents=None, api_endpoint=None, retry_initial=0.5):
    """Records for every matching instance of `project`, optionally only in `zones` (one walk either way)."""
    credentials = gce_credentials(auth_kind, service_account_file, service_account_contents)
    client = instances_client(credentials, counter, api_endpoint)
    found = aggregated_list(client, project, build_filter(filters, labels, instance_ids),
                            page_size=page_size, max_attempts=max_attempts, retry_initial=retry_initial)
    wanted = set(zones or [])
    return [normalize_instance(instance, zone) for zone, instance in found if not wanted or zone in wanted]
