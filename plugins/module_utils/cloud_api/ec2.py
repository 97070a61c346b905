# Copyright: itsp.cluster engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""EC2 instance discovery from the controller: one DescribeInstances per region and page, plus one
DescribeAddresses per region so elastic IPs associated after launch are never missed.

Each SDK call is one small function; everything else is pure data shaping and unit-testable
with plain dicts.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from ansible_collections.itsp.cluster.plugins.module_utils.cloud_api.common import CloudApiError
from ansible_collections.itsp.cluster.plugins.module_utils.cloud_api.records import (
    make_interface,
    make_record,
)

try:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError
    from botocore.parsers import ResponseParserError

    HAS_BOTO3 = True
    BOTO3_IMPORT_ERROR = None
except ImportError as import_error:  # pragma: no cover - exercised by the module's missing-lib test
    HAS_BOTO3 = False
    BOTO3_IMPORT_ERROR = import_error

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
    """One boto3 session for the whole run; credentials the boto3 way when none are given."""
    try:
        return boto3.session.Session(
            profile_name=profile,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            aws_session_token=session_token,
        )
    except BotoCoreError as error:
        raise _botocore_error("boto3.session", f"profile {profile}", error) from error


def ec2_client(session, region, counter, endpoint_url=None, max_attempts=5):
    """An EC2 client with adaptive retries whose every HTTP attempt is counted in `counter`.

    Build clients in one thread (sessions are not thread-safe); the clients themselves are, so the
    calls can then run in parallel.
    """
    config = Config(
        # total_max_attempts counts the first try too, which is what a person means by "attempts".
        retries={"mode": "adaptive", "total_max_attempts": max_attempts},
        connect_timeout=10,
        read_timeout=30,
        user_agent_extra="itsp.cluster/cloud_instances",
    )
    try:
        client = session.client("ec2", region_name=region, endpoint_url=endpoint_url, config=config)
    except BotoCoreError as error:
        raise _botocore_error("ec2.client", region, error) from error

    def count_attempt(event_name, **_kwargs):
        # event_name is before-send.ec2.<Operation>; fired once per HTTP attempt, retries included.
        counter.add("ec2." + event_name.rsplit(".", 1)[-1])

    client.meta.events.register("before-send.ec2", count_attempt)
    return client


def describe_instances(client, region, filters=None, page_size=PAGE_SIZE_MAX):
    """All instances matching, one DescribeInstances per page."""
    kwargs = {"PaginationConfig": {"PageSize": page_size}}
    if filters:
        kwargs["Filters"] = filters
    instances = []
    try:
        for page in client.get_paginator("describe_instances").paginate(**kwargs):
            for reservation in page.get("Reservations", []):
                instances.extend(reservation.get("Instances", []))
    except ClientError as error:
        raise _client_error(OP_DESCRIBE_INSTANCES, region, error) from error
    except (BotoCoreError, ResponseParserError) as error:
        raise _botocore_error(OP_DESCRIBE_INSTANCES, region, error) from error
    return instances


def describe_addresses(client, region):
    """Every elastic IP of the region in one call (DescribeAddresses is not paged)."""
    try:
        return client.describe_addresses().get("Addresses", [])
    except ClientError as error:
        raise _client_error(OP_DESCRIBE_ADDRESSES, region, error) from error
    except (BotoCoreError, ResponseParserError) as error:
        raise _botocore_error(OP_DESCRIBE_ADDRESSES, region, error) from error


def _client_error(operation, region, error):
    details = error.response.get("Error", {})
    metadata = error.response.get("ResponseMetadata", {})
    return CloudApiError(
        PROVIDER,
        operation,
        region,
        details.get("Code") or "Unknown",
        details.get("Message") or str(error),
        http_status=metadata.get("HTTPStatusCode"),
        attempts=metadata.get("RetryAttempts", 0) + 1,
    )


def _botocore_error(operation, region, error):
    # No usable answer (no credentials, unknown profile, endpoint unreachable, not XML): the class is
    # the code. Only the first line: a parser error goes on to quote the whole body it choked on.
    return CloudApiError(PROVIDER, operation, region, type(error).__name__, str(error).splitlines()[0])


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


def discover_region(client, region, filters=None, page_size=PAGE_SIZE_MAX):
    instances = describe_instances(client, region, filters=filters, page_size=page_size)
    if not instances:
        return []
    eips = index_elastic_ips(describe_addresses(client, region))
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
            pool.submit(discover_region, clients[region], region, filters=ec2_filters, page_size=page_size)
            for region in regions
        ]
    records = []
    for future in futures:
        records.extend(future.result())
    return records
