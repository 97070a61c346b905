"""EC2 catalog: DescribeInstanceTypes and DescribeInstanceTypeOfferings, one paginated call each
per region, with botocore's adaptive retries."""

from ansible_collections.itsp.cluster.plugins.module_utils.sizing.errors import SizingError

try:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    HAS_BOTO3 = True
    BOTO3_IMPORT_ERROR = None
except ImportError as exc:  # the module reports missing_required_lib("boto3")
    HAS_BOTO3 = False
    BOTO3_IMPORT_ERROR = exc

RETRY_CONFIG = {"retries": {"mode": "adaptive", "max_attempts": 10}}
PAGE_SIZE = 100


def ec2_client(region, endpoint_url=None, profile=None):
    session = boto3.session.Session(profile_name=profile, region_name=region)
    # botocore rewrites the retries dict it is given (max_attempts -> total_max_attempts, in
    # place): hand it a copy, or every later client would get one attempt more.
    return session.client("ec2", endpoint_url=endpoint_url,
                          config=Config(retries=dict(RETRY_CONFIG["retries"])))


def _api_error(operation, region, exc):
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code", "Unknown")
        message = error.get("Message", "")
        return SizingError(f"EC2 {operation} in {region} failed: {code}: {message}", code=code)
    return SizingError(f"EC2 {operation} in {region} failed: {exc}", code=type(exc).__name__)


def describe_instance_types(client, region):
    """Every instance type EC2 describes in this region (one paginated call)."""
    try:
        paginator = client.get_paginator("describe_instance_types")
        return [item for page in paginator.paginate(PaginationConfig={"PageSize": PAGE_SIZE})
                for item in page.get("InstanceTypes", [])]
    except (BotoCoreError, ClientError) as exc:
        raise _api_error("DescribeInstanceTypes", region, exc) from None


def describe_instance_type_offerings(client, region, location_type, locations=None):
    """{instance type: set of locations} where it is offered (one paginated call)."""
    kwargs = {"LocationType": location_type, "PaginationConfig": {"PageSize": PAGE_SIZE * 10}}
    if locations:
        kwargs["Filters"] = [{"Name": "location", "Values": list(locations)}]
    offered = {}
    try:
        paginator = client.get_paginator("describe_instance_type_offerings")
        for page in paginator.paginate(**kwargs):
            for item in page.get("InstanceTypeOfferings", []):
                offered.setdefault(item["InstanceType"], set()).add(item["Location"])
    except (BotoCoreError, ClientError) as exc:
        raise _api_error("DescribeInstanceTypeOfferings", region, exc) from None
    return offered


def record_from_ec2(item, zones):
    network = item.get("NetworkInfo", {})
    card_index = network.get("DefaultNetworkCardIndex", 0)
    card = next((c for c in network.get("NetworkCards", []) if c.get("NetworkCardIndex") == card_index), {})
    name = item["InstanceType"]
    return {
        "name": name,
        "family": name.split(".", 1)[0],
        "vcpus": item.get("VCpuInfo", {}).get("DefaultVCpus", 0),
        "memory_mb": item.get("MemoryInfo", {}).get("SizeInMiB", 0),
        "architectures": list(item.get("ProcessorInfo", {}).get("SupportedArchitectures", [])),
        "burstable": bool(item.get("BurstablePerformanceSupported", False)),
        "shared_cpu": False,
        "baseline_gbps": card.get("BaselineBandwidthInGbps"),
        "peak_gbps": card.get("PeakBandwidthInGbps"),
        "network_performance": card.get("NetworkPerformance") or network.get("NetworkPerformance", ""),
        "zones": sorted(zones),
    }


def fetch_ec2_records(region, zones=None, endpoint_url=None, profile=None, client=None):
    """Records for the types offered in ``region`` (and in every one of ``zones`` when given)."""
    client = client or ec2_client(region, endpoint_url, profile)
    if zones:
        offered = describe_instance_type_offerings(client, region, "availability-zone", zones)
        seen = set().union(*offered.values()) if offered else set()
        unknown = sorted(set(zones) - seen)
        if unknown:
            raise SizingError(f"no instance type is offered in zone(s) {', '.join(unknown)} "
                              f"of region {region}; check zones")
        offered = {name: where for name, where in offered.items() if set(zones) <= where}
    else:
        offered = describe_instance_type_offerings(client, region, "region")
    if not offered:
        raise SizingError(f"EC2 offers no instance types in region {region}; check the region name")
    return [record_from_ec2(item, offered[item["InstanceType"]] if zones else [])
            for item in describe_instance_types(client, region) if item["InstanceType"] in offered]
