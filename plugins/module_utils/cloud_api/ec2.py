# Copyright: itsp.cluster engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""EC2 instance discovery from the controller: one DescribeInstances per region and page, plus one
DescribeAddresses per region so elastic IPs associated after launch are never missed.

Each SDK call is one small function; everything else is pure data shaping and unit-testable
with plain dicts.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from ansible_collections.itsp.cluster.plugins.module_utils.cloud_api.records import (
    make_interface,
    make_record,
)
from ansible_collections.itsp.cluster.plugins.module_utils.sdk import aws

HAS_BOTO3 = aws.HAS_BOTO3
BOTO3_IMPORT_ERROR = aws.BOTO3_IMPORT_ERROR

PROVIDER = "aws"
OP_DESCRIBE_INSTANCES = "ec2.DescribeInstances"
OP_DESCRIBE_ADDRESSES = "ec2.DescribeAddresses"
PAGE_SIZE_MIN = 5
PAGE_SIZE_MAX = 1000
MAX_PARALLEL_REGIONS = 8


def build_filters(filters=None, tags=None, instance_ids=None):
    """Module-style {name: value-or-list} filters, {tag: value} tags and ids -> EC2 Filters.

    Ids go in an instance-id filter rather than InstanceIds: every region is asked for the same
    ids, and InstanceIds fails the whole call (InvalidInstanceID.NotFound) for an id that lives in
    another region. A filter also keeps paging possible.
    """
    result = []
    for name, value in sorted((filters or {}).items()):
        result.append({"Name": str(name), "Values": _as_strings(value)})
    for key, value in sorted((tags or {}).items()):
        result.append({"Name": f"tag:{key}", "Values": _as_strings(value)})
    if instance_ids:
        result.append({"Name": "instance-id", "Values": _as_strings(list(instance_ids))})
    return result


def _as_strings(value):
    values = value if isinstance(value, (list, tuple)) else [value]
    return [str(item) for item in values]


def aws_session(profile=None, access_key=None, secret_key=None, session_token=None):
    """One boto3 session for the whole run (sdk/aws.py)."""
    return aws.session(profile, access_key, secret_key, session_token)


def ec2_client(session, region, counter, endpoint_url=None, max_attempts=5):
    """An EC2 client from the shared factory (adaptive retries, every HTTP attempt counted)."""
    return aws.client("ec2", region, session, counter, endpoint_url, max_attempts,
                      user_agent="itsp.cluster/cloud_instances", region_option="regions")


def describe_instances(client, region, filters=None, page_size=PAGE_SIZE_MAX, counter=None, endpoint_url=None):
    """All instances matching, one DescribeInstances per page."""
    kwargs = {"PaginationConfig": {"PageSize": page_size}}
    if filters:
        kwargs["Filters"] = filters
    instances = []
    try:
        for page in client.get_paginator("describe_instances").paginate(**kwargs):
            for reservation in page.get("Reservations", []):
                instances.extend(reservation.get("Instances", []))
    except aws.API_ERRORS as error:
        raise aws.translate(error, OP_DESCRIBE_INSTANCES, region, counter, endpoint_url) from error
    return instances


def describe_addresses(client, region, counter=None, endpoint_url=None):
    """Every elastic IP of the region in one call (DescribeAddresses is not paged)."""
    try:
        return client.describe_addresses().get("Addresses", [])
    except aws.API_ERRORS as error:
        raise aws.translate(error, OP_DESCRIBE_ADDRESSES, region, counter, endpoint_url) from error


def index_elastic_ips(addresses):
    """EIPs keyed by (ENI id, private IP), and by instance id for those bound without an ENI."""
    by_interface = {}
    by_instance = {}
    for address in addresses:
        public_ip = address.get("PublicIp")
        if not public_ip:
            continue
        if address.get("NetworkInterfaceId") and address.get("PrivateIpAddress"):
            by_interface[(address["NetworkInterfaceId"], address["PrivateIpAddress"])] = public_ip
        elif address.get("InstanceId"):
            by_instance[address["InstanceId"]] = public_ip
    return {"by_interface": by_interface, "by_instance": by_instance}


def _tag(instance, key):
    for tag in instance.get("Tags") or []:
        if tag.get("Key") == key:
            return tag.get("Value")
    return None


def _interface_record(eni, eips):
    private_ip = eni.get("PrivateIpAddress")
    # DescribeAddresses is authoritative for EIPs: an association made seconds ago may not be in
    # the instance's Association block yet.
    public_ip = eips["by_interface"].get((eni.get("NetworkInterfaceId"), private_ip))
    if not public_ip:
        public_ip = (eni.get("Association") or {}).get("PublicIp")
    ipv6 = [entry.get("Ipv6Address") for entry in eni.get("Ipv6Addresses") or []]
    return make_interface(eni.get("NetworkInterfaceId"), eni.get("MacAddress"), private_ip, public_ip, ipv6)


def normalize_instance(instance, region, eips=None):
    """One DescribeInstances instance dict -> the normalized record."""
    eips = eips or index_elastic_ips([])
    enis = sorted(
        instance.get("NetworkInterfaces") or [],
        key=lambda eni: (eni.get("Attachment") or {}).get("DeviceIndex", 0),
    )
    interfaces = [_interface_record(eni, eips) for eni in enis]
    if not interfaces and instance.get("PrivateIpAddress"):
        # Answers without a NetworkInterfaces block still carry the instance-level addresses.
        public_ip = eips["by_instance"].get(instance.get("InstanceId")) or instance.get("PublicIpAddress")
        interfaces = [make_interface(None, None, instance["PrivateIpAddress"], public_ip)]
    return make_record(
        provider=PROVIDER,
        region=region,
        zone=(instance.get("Placement") or {}).get("AvailabilityZone"),
        instance_id=instance.get("InstanceId"),
        instance_type=instance.get("InstanceType"),
        name=_tag(instance, "Name"),
        state=(instance.get("State") or {}).get("Name"),
        interfaces=interfaces,
    )


def discover_region(client, region, filters=None, page_size=PAGE_SIZE_MAX, counter=None, endpoint_url=None):
    instances = describe_instances(client, region, filters=filters, page_size=page_size, counter=counter,
                                   endpoint_url=endpoint_url)
    if not instances:
        return []
    eips = index_elastic_ips(describe_addresses(client, region, counter=counter, endpoint_url=endpoint_url))
    return [normalize_instance(instance, region, eips) for instance in instances]


def discover(regions, counter, filters=None, tags=None, instance_ids=None, page_size=PAGE_SIZE_MAX,
             endpoint_url=None, profile=None, access_key=None, secret_key=None, session_token=None,
             max_attempts=5):
    """Records for every matching instance in `regions`, regions queried in parallel.

    When several regions fail, the first in the caller's order is reported.
    """
    ec2_filters = build_filters(filters, tags, instance_ids)
    regions = list(dict.fromkeys(regions))
    if not regions:
        return []
    session = aws_session(profile, access_key, secret_key, session_token)
    clients = {region: ec2_client(session, region, counter, endpoint_url, max_attempts) for region in regions}
    with ThreadPoolExecutor(max_workers=min(len(regions), MAX_PARALLEL_REGIONS)) as pool:
        futures = [
            pool.submit(discover_region, clients[region], region, filters=ec2_filters, page_size=page_size,
                        counter=counter, endpoint_url=endpoint_url)
            for region in regions
        ]
    records = []
    for future in futures:
        records.extend(future.result())
    return records
