"""EC2 catalog: DescribeInstanceTypes and DescribeInstanceTypeOfferings, one paginated call each
per region, with botocore's adaptive retries."""

from ansible_collections.itsp.cluster.plugins.module_utils.sdk import aws
from ansible_collections.itsp.cluster.plugins.module_utils.sdk.common import DEFAULT_MAX_ATTEMPTS, ApiCallCounter
from ansible_collections.itsp.cluster.plugins.module_utils.sizing.errors import SizingError

HAS_BOTO3 = aws.HAS_BOTO3
BOTO3_IMPORT_ERROR = aws.BOTO3_IMPORT_ERROR
PAGE_SIZE = 100
OP_TYPES = "ec2.DescribeInstanceTypes"
OP_OFFERINGS = "ec2.DescribeInstanceTypeOfferings"


def ec2_client(region, endpoint_url=None, profile=None, counter=None, max_attempts=DEFAULT_MAX_ATTEMPTS,
               access_key=None, secret_key=None, session_token=None):
    """An EC2 client from the shared factory (sdk/aws.py): adaptive retries, attempts counted."""
    session = aws.session(profile, access_key, secret_key, session_token)
    return aws.client("ec2", region, session, counter, endpoint_url, max_attempts,
                      user_agent="itsp.cluster/instance_size")


def describe_instance_types(client, region, counter=None, endpoint_url=None):
    """Every instance type EC2 describes in this region (one paginated call)."""
    try:
        paginator = client.get_paginator("describe_instance_types")
        return [item for page in paginator.paginate(PaginationConfig={"PageSize": PAGE_SIZE})
                for item in page.get("InstanceTypes", [])]
    except aws.API_ERRORS as exc:
        raise aws.translate(exc, OP_TYPES, region, counter, endpoint_url) from None


def describe_instance_type_offerings(client, region, location_type, locations=None, counter=None,
                                     endpoint_url=None):
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
    except aws.API_ERRORS as exc:
        raise aws.translate(exc, OP_OFFERINGS, region, counter, endpoint_url) from None
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


def fetch_ec2_records(region, zones=None, endpoint_url=None, profile=None, client=None, counter=None,
                      max_attempts=DEFAULT_MAX_ATTEMPTS, access_key=None, secret_key=None, session_token=None):
    """Records for the types offered in ``region`` (and in every one of ``zones`` when given)."""
    counter = counter if counter is not None else ApiCallCounter()
    client = client or ec2_client(region, endpoint_url, profile, counter, max_attempts, access_key, secret_key,
                                  session_token)
    calls = {"counter": counter, "endpoint_url": endpoint_url}
    if zones:
        offered = describe_instance_type_offerings(client, region, "availability-zone", zones, **calls)
        seen = set().union(*offered.values()) if offered else set()
        unknown = sorted(set(zones) - seen)
        if unknown:
            raise SizingError(f"no instance type is offered in zone(s) {', '.join(unknown)} "
                              f"of region {region}; check zones")
        offered = {name: where for name, where in offered.items() if set(zones) <= where}
    else:
        offered = describe_instance_type_offerings(client, region, "region", **calls)
    if not offered:
        raise SizingError(f"EC2 offers no instance types in region {region}; check the region name")
    return [record_from_ec2(item, offered[item["InstanceType"]] if zones else [])
            for item in describe_instance_types(client, region, **calls) if item["InstanceType"] in offered]
