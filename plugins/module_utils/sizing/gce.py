"""GCE catalog: MachineTypesClient.list per zone, or aggregatedList once for a whole region,
with google-api-core's Retry on the transient codes."""

import re

from ansible_collections.itsp.cluster.plugins.module_utils.sdk import gce as sdk
from ansible_collections.itsp.cluster.plugins.module_utils.sdk.common import DEFAULT_MAX_ATTEMPTS
from ansible_collections.itsp.cluster.plugins.module_utils.sizing.errors import SizingError

try:
    from google.cloud import compute_v1
except ImportError:  # the module reports missing_required_lib("google-cloud-compute")
    compute_v1 = None

HAS_GOOGLE = sdk.HAS_GOOGLE and compute_v1 is not None
GOOGLE_IMPORT_ERROR = sdk.GOOGLE_IMPORT_ERROR
PAGE_SIZE = 500
ARM_SERIES = ("t2a", "c4a")
REGION_NAME = re.compile(r"[a-z]+-[a-z]+[0-9]+")


def machine_types_client(endpoint=None, auth_kind="application", service_account_file=None,
                         service_account_contents=None):
    """A REST client from the shared factory (sdk/gce.py); credentials follow auth_kind, whatever the endpoint."""
    creds = sdk.credentials(auth_kind, service_account_file, service_account_contents)
    return sdk.client(compute_v1.MachineTypesClient, creds, endpoint)


def list_machine_types(client, project, zone, max_attempts=DEFAULT_MAX_ATTEMPTS, endpoint=None):
    """Machine types of one zone (MachineTypesClient.list, all pages)."""
    request = compute_v1.ListMachineTypesRequest(project=project, zone=zone, max_results=PAGE_SIZE)
    retry, budget = sdk.retry(max_attempts)
    try:
        return list(client.list(request=request, retry=retry, timeout=sdk.REQUEST_TIMEOUT))
    except sdk.API_ERRORS as exc:
        raise sdk.translate(exc, "compute.machineTypes.list", f"{project}/{zone}", budget, endpoint) from None


def aggregated_list_machine_types(client, project, region=None, max_attempts=DEFAULT_MAX_ATTEMPTS, endpoint=None):
    """{zone: [machine types]} for every zone of the project, or of ``region`` only (aggregatedList
    with a server-side filter on the zone name, all pages)."""
    request = compute_v1.AggregatedListMachineTypesRequest(project=project, max_results=PAGE_SIZE)
    if region:
        request.filter = f"zone eq {region}-.*"
    by_zone = {}
    retry, budget = sdk.retry(max_attempts)
    try:
        for scope, scoped in client.aggregated_list(request=request, retry=retry, timeout=sdk.REQUEST_TIMEOUT):
            if scoped.machine_types:
                by_zone[scope.rsplit("/", 1)[-1]] = list(scoped.machine_types)
    except sdk.API_ERRORS as exc:
        raise sdk.translate(exc, "compute.machineTypes.aggregatedList", f"project {project}", budget,
                            endpoint) from None
    return by_zone


def record_from_gce(machine_type, zones):
    name = machine_type.name
    series = name.split("-", 1)[0]
    arch = (getattr(machine_type, "architecture", "") or "").lower()
    if not arch:
        arch = "arm64" if series in ARM_SERIES else "x86_64"
    return {
        "name": name,
        "family": series,
        "vcpus": machine_type.guest_cpus,
        "memory_mb": machine_type.memory_mb,
        "architectures": [arch],
        "burstable": False,
        "shared_cpu": bool(machine_type.is_shared_cpu),
        "baseline_gbps": None,
        "peak_gbps": None,
        "network_performance": "",
        "zones": sorted(zones),
    }


def fetch_gce_records(project, region, zones=None, endpoint=None, client=None, max_attempts=DEFAULT_MAX_ATTEMPTS,
                      auth_kind="application", service_account_file=None, service_account_contents=None):
    """Records for the machine types of ``region``: in every one of ``zones`` when given (one
    list call per zone), else in any zone of the region (one aggregatedList)."""
    if not REGION_NAME.fullmatch(region or ""):
        raise SizingError(f"'{region}' is not a GCE region name (like europe-west1)")
    client = client or machine_types_client(endpoint, auth_kind, service_account_file, service_account_contents)
    calls = {"max_attempts": max_attempts, "endpoint": endpoint}
    if zones:
        foreign = [z for z in zones if not z.startswith(region + "-")]
        if foreign:
            raise SizingError(f"zone(s) {', '.join(foreign)} are not in region {region}")
        by_zone = {zone: list_machine_types(client, project, zone, **calls) for zone in zones}
        empty = [z for z, types in by_zone.items() if not types]
        if empty:
            raise SizingError(f"GCE lists no machine types in zone(s) {', '.join(empty)} "
                              f"of project {project}; check zones")
    else:
        found = aggregated_list_machine_types(client, project, region, **calls)
        by_zone = {z: t for z, t in found.items() if z.startswith(region + "-")}
        if not by_zone:
            raise SizingError(f"GCE lists no machine types in region {region} for project {project}; "
                              "check the region name")
    seen = {}
    where = {}
    for zone, types in sorted(by_zone.items()):
        for machine_type in types:
            seen.setdefault(machine_type.name, machine_type)
            where.setdefault(machine_type.name, set()).add(zone)
    wanted = set(zones or [])
    return [record_from_gce(seen[name], where[name]) for name in sorted(seen)
            if not wanted or wanted <= where[name]]
