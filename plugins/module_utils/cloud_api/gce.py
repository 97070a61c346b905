# Copyright: itsp.cluster engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""GCE instance discovery from the controller: one instances.aggregatedList walk for all zones.

The client uses the REST transport; every HTTP attempt (pages and retries) passes through an
interceptor that counts it, so `api_calls` matches what the server saw.
"""

from __future__ import annotations

import functools

from ansible_collections.itsp.cluster.plugins.module_utils.cloud_api.records import (
    make_interface,
    make_record,
)
from ansible_collections.itsp.cluster.plugins.module_utils.sdk import gce as sdk

try:
    from google.cloud import compute_v1
    from google.cloud.compute_v1.services.instances.transports.rest import (
        InstancesRestInterceptor,
        InstancesRestTransport,
    )

    HAS_GOOGLE_COMPUTE = sdk.HAS_GOOGLE
    GOOGLE_COMPUTE_IMPORT_ERROR = sdk.GOOGLE_IMPORT_ERROR
except ImportError as import_error:  # pragma: no cover - exercised by the module's missing-lib test
    HAS_GOOGLE_COMPUTE = False
    GOOGLE_COMPUTE_IMPORT_ERROR = import_error
    InstancesRestInterceptor = object

PROVIDER = "gce"
OP_AGGREGATED_LIST = "compute.instances.aggregatedList"
PAGE_SIZE_MAX = 500
class CountingInterceptor(InstancesRestInterceptor):
    """Counts each aggregatedList HTTP attempt; the retry wrapper calls the transport per attempt."""

    def __init__(self, counter):
        super().__init__()
        self._counter = counter

    def pre_aggregated_list(self, request, metadata):
        self._counter.add(OP_AGGREGATED_LIST)
        return request, metadata


def gce_credentials(auth_kind="application", service_account_file=None, service_account_contents=None):
    """google.auth credentials for the chosen auth_kind (sdk/gce.py)."""
    return sdk.credentials(auth_kind, service_account_file, service_account_contents)


def instances_client(credentials, counter, api_endpoint=None):
    transport = functools.partial(InstancesRestTransport, interceptor=CountingInterceptor(counter))
    return sdk.client(compute_v1.InstancesClient, credentials, api_endpoint, transport=transport)


RetryBudget = sdk.RetryBudget
is_retryable = sdk.is_retryable


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
                    retry_initial=0.5, retry_maximum=8.0, retry_timeout=120.0, api_endpoint=None, zones_seen=None):
    """(zone, instance dict) for every instance, walking all pages of instances.aggregatedList.

    ``zones_seen`` (a set) collects every zone the answer names, empty ones too, so the caller can
    tell a zone without instances from a zone the project does not have."""
    retry, budget = sdk.retry(max_attempts, initial=retry_initial, maximum=retry_maximum, timeout=retry_timeout)
    request = compute_v1.AggregatedListInstancesRequest(project=project, max_results=page_size)
    if filter_expression:
        request.filter = filter_expression
    found = []
    try:
        pager = client.aggregated_list(request=request, retry=retry, timeout=sdk.REQUEST_TIMEOUT)
        for scope, scoped_list in pager:
            zone = scope.rpartition("/")[2] if scope.startswith("zones/") else None
            for instance in scoped_list.instances:
                found.append((zone, compute_v1.Instance.to_dict(instance, preserving_proto_field_name=False)))
            if zone and zones_seen is not None:
                zones_seen.add(zone)
    except sdk.API_ERRORS as error:
        raise sdk.translate(error, OP_AGGREGATED_LIST, f"project {project}", budget, api_endpoint) from error
    return found


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
             service_account_contents=None, api_endpoint=None, retry_initial=0.5, zones_seen=None):
    """Records for every matching instance of `project`, optionally only in `zones` (one walk either way).

    ``zones_seen`` (a set) receives every zone of the project the answer named."""
    credentials = gce_credentials(auth_kind, service_account_file, service_account_contents)
    client = instances_client(credentials, counter, api_endpoint)
    found = aggregated_list(client, project, build_filter(filters, labels, instance_ids),
                            page_size=page_size, max_attempts=max_attempts, retry_initial=retry_initial,
                            api_endpoint=api_endpoint, zones_seen=zones_seen)
    wanted = set(zones or [])
    return [normalize_instance(instance, zone) for zone, instance in found if not wanted or zone in wanted]
