#!/usr/bin/python
# Copyright: itsp.cluster engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: cloud_instances
short_description: List a fleet's instances and addresses from the controller, in batched API calls
version_added: "0.1.0"
description:
  - Asks the cloud API, not the hosts, for every matching instance and returns one normalized record
    per instance with the same keys as the on-host M(itsp.cluster.cloud_facts) module, so either
    source can feed the Kamailio and rtpengine roles.
  - "AWS: one C(DescribeInstances) per region and page, plus one C(DescribeAddresses) per region so an
    elastic IP associated after launch is reported even before the instance's own answer shows it.
    Regions are queried in parallel."
  - "GCE: one C(instances.aggregatedList) walk covers every zone of the project."
  - Calls are never made per host. O(api_calls) in the result shows how many requests went out.
  - Throttling (C(RequestLimitExceeded), HTTP 429, Compute's C(rateLimitExceeded)), transient
    server errors and unanswered connections are retried with the SDK's own back-off, up to
    O(max_attempts) tries per request.
  - Public addresses on AWS and GCE are 1-to-1 NAT onto a private address, so C(nat) is
    C(one_to_one) whenever a public IPv4 exists and C(none) otherwise.
  - "Runs on the controller; use C(delegate_to: localhost) and C(run_once: true)."
author:
  - itsp.cluster engineers (@itsp-cluster)
extends_documentation_fragment:
  - itsp.cluster.cloud_api
  - itsp.cluster.aws
  - itsp.cluster.gce
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: >-
      Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
    details: Read-only; there is never a change to show.
  idempotent:
    description: When run twice in a row without outside changes, the second run reports no change.
    support: full
    details: Read-only; always C(changed=false).
options:
  provider:
    description: The cloud to ask.
    type: str
    required: true
    choices: [aws, gce]
  regions:
    description:
      - AWS regions to search. Required for O(provider=aws); each region is one batch of calls.
    type: list
    elements: str
    aliases: [region]
  zones:
    description:
      - Keep only instances in these GCE zones. The aggregated list is still one walk over all zones;
        the zone restriction is applied to its answer. A zone the project does not have is named in a
        warning.
    type: list
    elements: str
  filters:
    description:
      - Narrow the search. Values are strings or lists of strings (a list matches any of them).
      - For AWS, keys are EC2 filter names (C(instance-state-name), C(vpc-id), ...).
      - For GCE, keys are Compute instance fields (C(status), C(name), C(labels.role), ...); each becomes
        C(field = "value") and the terms are ANDed into the request's filter.
    type: dict
  tags:
    description:
      - "Tags (AWS) or labels (GCE) that instances must carry, as C(key: value)."
    type: dict
    aliases: [labels]
  instance_ids:
    description:
      - Exactly these instances (EC2 instance ids, or GCE numeric instance ids). Cannot be combined
        with O(filters) or O(tags).
      - Every region is searched for every id; ids found nowhere are named in a warning.
    type: list
    elements: str
  page_size:
    description:
      - Instances asked for per page. Defaults to the API maximum (1000 for AWS, 500 for GCE), so a
        fleet of up to that size costs one call per region (AWS) or one call in all (GCE).
      - AWS accepts 5 to 1000, GCE 1 to 500.
    type: int
notes:
  - "The MAC address is null for GCE instances: the Compute API does not expose it."
  - "Interface names are the cloud's names for the interface (the ENI id on AWS, V(nic0)... on GCE),
    not the guest's device names."
  - For each interface only the primary private IPv4 and the public IPv4 mapped onto it are
    reported; public addresses on secondary private IPs are not.
seealso:
  - module: amazon.aws.ec2_instance_info
  - module: google.cloud.gcp_compute_instance_info
"""

EXAMPLES = r"""
- name: Find the SIP fleet in three AWS regions
  itsp.cluster.cloud_instances:
    provider: aws
    regions: [eu-west-1, eu-central-1, us-east-1]
    tags:
      role: sip
    filters:
      instance-state-name: [pending, running]
  delegate_to: localhost
  run_once: true
  register: aws_fleet

- name: Show each instance's public address
  ansible.builtin.debug:
    msg: "{{ aws_fleet.instances | items2dict(key_name='name', value_name='public_ipv4') }}"

- name: Find running media relays in a GCE project, all zones at once
  itsp.cluster.cloud_instances:
    provider: gce
    project: itsp-prod
    auth_kind: serviceaccount
    service_account_file: /etc/itsp/gce-reader.json
    tags:
      role: rtpengine
    filters:
      status: RUNNING
  delegate_to: localhost
  run_once: true
  register: gce_fleet

- name: Ask the lab's local Compute stand-in
  itsp.cluster.cloud_instances:
    provider: gce
    project: itsp-lab
    auth_kind: anonymous
    endpoint_url: http://127.0.0.1:8780
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
instances:
  description: One record per instance, ordered by region, zone, name and id.
  returned: success
  type: list
  elements: dict
  contains:
    provider:
      description: V(aws) or V(gce).
      type: str
      sample: aws
    region:
      description: AWS region, or the GCE region the zone belongs to.
      type: str
      sample: eu-west-1
    zone:
      description: Availability zone (AWS) or zone (GCE).
      type: str
      sample: eu-west-1a
    instance_id:
      description: EC2 instance id, or the GCE numeric instance id as a string.
      type: str
      sample: i-0123456789abcdef0
    instance_type:
      description: EC2 instance type or GCE machine type name.
      type: str
      sample: c5.large
    name:
      description: The C(Name) tag (AWS) or the instance name (GCE); null when untagged.
      type: str
      sample: sip-edge-1
    state:
      description: >-
        The lifecycle state as the cloud names it, lower-cased (V(running), V(stopped), V(terminated)...).
      type: str
      sample: running
    interfaces:
      description: Network interfaces, primary first. Empty when the cloud reports none.
      type: list
      elements: dict
      contains:
        name:
          description: The cloud's name for the interface (ENI id on AWS, V(nic0)... on GCE).
          type: str
          sample: eni-0123456789abcdef0
        mac:
          description: MAC address (AWS); null on GCE.
          type: str
          sample: "02:00:00:87:cc:b9"
        private_ipv4:
          description: Primary private IPv4 of the interface.
          type: str
          sample: 198.18.1.4
        public_ipv4:
          description: Public IPv4 mapped onto it (an elastic IP or an ephemeral one), or null.
          type: str
          sample: 203.0.113.10
        ipv6:
          description: IPv6 addresses of the interface.
          type: list
          elements: str
          sample: []
        nat:
          description: V(one_to_one) when a public IPv4 is mapped onto the interface, else V(none).
          type: str
          sample: one_to_one
    private_ipv4:
      description: The primary interface's private IPv4, or null.
      type: str
      sample: 198.18.1.4
    public_ipv4:
      description: The primary interface's public IPv4, or null.
      type: str
      sample: 203.0.113.10
    nat:
      description: V(one_to_one) when the primary interface has a public IPv4, else V(none).
      type: str
      sample: one_to_one
api_calls:
  description:
    - HTTP requests sent per API operation, every page and every retry included.
    - Grows with pages and regions, not with the number of hosts.
  returned: always
  type: dict
  sample: {"ec2.DescribeAddresses": 3, "ec2.DescribeInstances": 3}
error_code:
  description: >-
    The cloud's own error code when a call failed
    (C(AuthFailure), C(RequestLimitExceeded), C(PERMISSION_DENIED)...).
  returned: failure of a cloud call
  type: str
  sample: AuthFailure
http_status:
  description: The HTTP status of the failed call, when there was an HTTP answer.
  returned: failure of a cloud call
  type: int
  sample: 401
operation:
  description: The API operation that failed.
  returned: failure of a cloud call
  type: str
  sample: ec2.DescribeInstances
attempts:
  description: How many times the failed request was tried.
  returned: failure of a cloud call
  type: int
  sample: 5
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.itsp.cluster.plugins.module_utils.cloud_api.finder import (
    CloudInstanceFinder,
    missing_library,
    option_problems,
)
from ansible_collections.itsp.cluster.plugins.module_utils.errors import ItspError
from ansible_collections.itsp.cluster.plugins.module_utils.sdk import aws as aws_sdk
from ansible_collections.itsp.cluster.plugins.module_utils.sdk import common as sdk_common
from ansible_collections.itsp.cluster.plugins.module_utils.sdk import gce as gce_sdk


def argument_spec():
    spec = dict(
        provider=dict(type="str", required=True, choices=["aws", "gce"]),
        regions=dict(type="list", elements="str", aliases=["region"]),
        zones=dict(type="list", elements="str"),
        filters=dict(type="dict"),
        tags=dict(type="dict", aliases=["labels"]),
        instance_ids=dict(type="list", elements="str"),
        page_size=dict(type="int"),
    )
    spec.update(sdk_common.argument_spec())
    spec.update(aws_sdk.argument_spec())
    spec.update(gce_sdk.argument_spec())
    return spec


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[
            ("instance_ids", "filters"),
            ("instance_ids", "tags"),
            ("profile", "access_key"),
        ] + gce_sdk.MUTUALLY_EXCLUSIVE,
        required_together=[("access_key", "secret_key")],
        required_if=[
            ("provider", "aws", ["regions"]),
            ("provider", "gce", ["project"]),
        ] + gce_sdk.REQUIRED_IF,
        supports_check_mode=True,
    )
    problems = option_problems(module.params)
    if problems:
        module.fail_json(msg="; ".join(problems))
    library = missing_library(module.params["provider"])
    if library:
        module.fail_json(msg=missing_required_lib(library))

    # Read-only: check mode runs the same calls, there is no side effect to guard.
    finder = CloudInstanceFinder(module.params)
    try:
        result = finder.find()
    except ItspError as error:
        module.fail_json(msg=error.msg, api_calls=finder.counter.as_dict(), **error.as_result())
    for warning in finder.warnings:
        module.warn(warning)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
