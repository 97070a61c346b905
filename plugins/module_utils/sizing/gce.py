"""GCE catalog: MachineTypesClient.list per zone, or aggregatedList once for a whole region,
with google-api-core's Retry on the transient codes."""

import re

from ansible_collections.itsp.cluster.plugins.module_utils.sizing.errors import SizingError

try:
    from google.api_core import exceptions as gapi_exceptions
    from google.api_core import retry as gapi_retry
    from google.auth import exceptions as auth_exceptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import compute_v1

    HAS_GOOGLE = True
    GOOGLE_IMPORT_ERROR = None
    RETRY = gapi_retry.Retry(
        predicate=gapi_retry.if_exception_type(
            gapi_exceptions.TooManyRequests, gapi_exceptions.ServiceUnavailable,
            gapi_exceptions.InternalServerError, gapi_exceptions.BadGateway),
        initial=0.5, maximum=8.0, multiplier=2.0, timeout=60.0)
    API_ERRORS = (gapi_exceptions.GoogleAPIError, auth_exceptions.GoogleAuthError)
except ImportError as exc:  # the module reports missing_required_lib("google-cloud-compute")
    HAS_GOOGLE = False
    GOOGLE_IMPORT_ERROR = exc
    RETRY = None
    API_ERRORS = ()

PAGE_SIZE = 500
ARM_SERIES = ("t2a", "c4a")
REGION_NAME = re.compile(r"[a-z]+-[a-z]+[0-9]+")


def machine_types_client(endpoint=None):
    """A REST client; with ``endpoint`` (a stand-in or a private endpoint) it sends no credentials."""
    if endpoint:
        return compute_v1.MachineTypesClient(transport="rest", client_options={"api_endpoint": endpoint},
                                             credentials=AnonymousCredentials())
    return compute_v1.MachineTypesClient(transport="rest")


def _api_error(operation, where, exc):
    code = getattr(exc, "code", None) or type(exc).__name__
    message = getattr(exc, "message", None) or str(exc)
    return SizingError(f"GCE {operation} for {where} failed: {code}: {message}", code=code)


def list_machine_types(client, project, zone):
    """Machine types of one zone (MachineTypesClient.list, all pages)."""
    request = compute_v1.ListMachineTypesRequest(project=project, zone=zone, max_results=PAGE_SIZE)
    try:
        return list(client.list(request=request, retry=RETRY))
    except API_ERRORS as exc:
        raise _api_error("machineTypes.list", f"{project}/{zone}", exc) from None


def aggregated_list_machine_types(client, project, region=None):
    """{zone: [machine types]} for every zone of the project, or of ``region`` only (aggregatedList
    with a server-side filter on the zone name, all pages)."""
    request = compute_v1.AggregatedListMachineTypesRequest(project=project, max_results=PAGE_SIZE)
    if region:
        request.filter = f"zone eq {region}-.*"
    by_zone = {}
    try:
        for scope, scoped in client.aggregated_list(request=request, retry=RETRY):
            if scoped.machine_types:
                by_zone[scope.rsplit("/", 1)[-1]] = list(scoped.machine_types)
    except API_ERRORS as exc:
        raise _api_error("machineTypes.aggregatedList", project, exc) from None
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


def fetch_gce_records(project, region, zones=None, endpoint=None, client=None):
    """Records for the machine types of ``region``: in every one of ``zones`` when given (one
    list call per zone), else in any zone of the region (one aggregatedList)."""
    if not REGION_NAME.fullmatch(region or ""):
        raise SizingError(f"'{region}' is not a GCE region name (like europe-west1)")
    client = client or machine_types_client(endpoint)
    if zones:
        foreign = [z for z in zones if not z.startswith(region + "-")]
        if foreign:
            raise SizingError(f"zone(s) {', '.join(foreign)} are not in region {region}")
        by_zone = {zone: list_machine_types(client, project, zone) for zone in zones}
        empty = [z for z, types in by_zone.items() if not types]
        if empty:
            raise SizingError(f"GCE lists no machine types in zone(s) {', '.join(empty)} "
                              f"of project {project}; check zones")
    else:
        found = aggregated_list_machine_types(client, project, region)
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
