#!/usr/bin/python
# Copyright: itsp.cluster engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: cloud_facts
short_description: Find where a SIP host lives and which addresses it has behind which NAT
version_added: 0.1.0
description:
  - Runs on the managed host and asks the cloud metadata service at O(metadata_endpoint) which
    cloud the host is in (AWS IMDSv2, GCE metadata server, Azure IMDS), falling back to the host's
    own addresses on bare metal.
  - Decides the NAT kind on the host itself, a public address bound on an interface means no NAT,
    one that is not bound means 1-to-1 NAT in front of the host (Kamailio then needs C(advertise),
    rtpengine C(interface = NAME/PRIVATE!PUBLIC)).
  - Sets the fact C(itsp_cloud). Only the Python standard library is used on the host, plus
    C(ip) from iproute2 (4.13 or later, for JSON output).
  - A provider whose endpoint refuses the connection or does not answer moves detection on to the
    next one quickly (one O(timeout) at most for all of aws, gce and azure together, since they
    share the endpoint). A provider that answers but refuses (HTTP 401, 403), is throttled three
    times in a row (HTTP 429) or answers nonsense fails the module with a message naming the
    endpoint, unless O(private_ipv4) or O(public_ipv4) are given, then those are used with a
    warning.
author:
  - itsp.cluster engineers (@itsp-cluster)
options:
  providers:
    description:
      - Where to look, in this order. V(metal) never fails to answer, so it belongs last.
      - Leave V(metal) out to fail on a host that should be in a cloud but cannot reach the
        metadata service.
    type: list
    elements: str
    choices: [aws, gce, azure, metal]
    default: [aws, gce, azure, metal]
  timeout:
    description:
      - Seconds to wait for each metadata request (connection and reply). Short by default, so
        bare metal, where nothing answers, pays little.
    type: float
    default: 1.0
  metadata_endpoint:
    description:
      - Base URL of the metadata service, C(http://HOST[:PORT]). Change it only for tests or a
        metadata proxy.
    type: str
    default: http://169.254.169.254
  private_ipv4:
    description:
      - This host's own address, instead of the detected one (for example a host with several
        interfaces and no default route).
      - Also used, with a warning, when the metadata service answers but fails.
    type: str
  public_ipv4:
    description:
      - The address the internet reaches this host on, instead of the detected one. For bare metal
        behind a NAT that someone else runs.
      - When it is not bound on the host, RV(ansible_facts.itsp_cloud.nat) is V(one_to_one).
    type: str
  validate:
    description:
      - Check the result, the private address must be bound on the host and neither address may
        be V(0.0.0.0). When the public address is bound but the private one is not, the message
        says they look swapped.
      - Turn it off only when the private address is bound later (keepalived, a floating IP).
    type: bool
    default: true
  stun_server:
    description:
      - C(HOST[:PORT]) of a STUN server (RFC 5389, UDP, port 3478 by default), asked for this
        host's public address on bare metal when no public address is bound and O(public_ipv4) is
        not given. Off by default, a SIP host should not depend on a third party to start.
    type: str
  public_networks:
    description:
      - IPv4 networks to count as public besides the globally routable ones, for a network that
        plays the internet with other ranges. The lab sets C(itsp_public_networks) to the
        documentation ranges 203.0.113.0/24 and 198.51.100.0/24 and passes it here.
      - Decides which bound address is the public one on bare metal, and the warning for a
        O(public_ipv4) that is not public.
    type: list
    elements: str
    default: []
notes:
  - Runs read-only, so check mode returns the same facts as a normal run.
  - Addresses are classified by one classifier shared with the C(itsp.cluster.private_ipv4) test
    (module_utils/addresses.py) - public is globally routable or inside O(public_networks);
    198.18.0.0/15 and the RFC 1918 ranges are private; documentation ranges are neither unless listed.
seealso:
  - name: AWS instance metadata options (HttpPutResponseHopLimit)
    description: Why IMDSv2 fails from inside a container when the hop limit is 1.
    link: https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/configuring-instance-metadata-options.html
  - name: Azure Instance Metadata Service
    description: The instance and load balancer documents.
    link: https://learn.microsoft.com/en-us/azure/virtual-machines/instance-metadata-service
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in diff mode).
    support: none
    details: Nothing is changed, so there is no diff.
  idempotent:
    description: When run twice in a row with the same arguments, the second run reports no change.
    support: full
  facts:
    description: Action returns an C(ansible_facts) dictionary that will update existing host facts.
    support: full
"""

EXAMPLES = r"""
- name: Find the cloud and the addresses (aws, gce, azure, then bare metal)
  itsp.cluster.cloud_facts:

- name: Show what Kamailio should advertise
  ansible.builtin.debug:
    msg: "listen {{ itsp_cloud.private_ipv4 }} advertise {{ itsp_cloud.public_ipv4 }}"
  when: itsp_cloud.nat == 'one_to_one'

- name: Bare metal behind a NAT someone else runs
  itsp.cluster.cloud_facts:
    providers: [metal]
    public_ipv4: 203.0.113.40

- name: AWS only, fail if the metadata service cannot be reached
  itsp.cluster.cloud_facts:
    providers: [aws]
    timeout: 2

- name: Bare metal, ask a STUN server for the public address
  itsp.cluster.cloud_facts:
    providers: [metal]
    stun_server: stun.example.net:3478
"""

RETURN = r"""
ansible_facts:
  description: The facts set on the host.
  returned: success
  type: dict
  contains:
    itsp_cloud:
      description: Where the host lives and its addresses. The roles read these keys.
      returned: success
      type: dict
      contains:
        provider:
          description: Where the host lives.
          type: str
          returned: success
          choices: [aws, gce, azure, metal]
          sample: aws
        region:
          description: Cloud region (AWS region, GCE region, Azure location); null on bare metal.
          type: str
          returned: success
          sample: eu-west-1
        zone:
          description: Availability zone (Azure, the zone number as the service gives it); null on bare metal.
          type: str
          returned: success
          sample: eu-west-1a
        instance_id:
          description: Instance id (AWS instance id, GCE numeric id, Azure vmId); null on bare metal.
          type: str
          returned: success
          sample: i-0a11bb22cc33dd44e
        instance_type:
          description: Instance type (AWS instance type, GCE machine type, Azure vmSize); null on bare metal.
          type: str
          returned: success
          sample: c6i.large
        source:
          description: Where the addresses came from, short, for people.
          type: str
          returned: success
          sample: aws imdsv2 http://169.254.169.254
        interfaces:
          description: Every interface the provider knows, the primary first.
          type: list
          elements: dict
          returned: success
          contains:
            name:
              description: Interface name on the host (matched by MAC, else by address); null when not found.
              type: str
              sample: ens5
            mac:
              description: MAC address, lower case with colons.
              type: str
              sample: 02:18:00:00:00:11
            private_ipv4:
              description: The interface's own IPv4 address.
              type: str
              sample: 198.18.0.11
            public_ipv4:
              description: Public IPv4 address of this interface, null when it has none.
              type: str
              sample: 203.0.113.11
            ipv6:
              description: IPv6 addresses (global scope).
              type: list
              elements: str
              sample: []
            nat:
              description: V(one_to_one) when the public address is not bound on the host, else V(none).
              type: str
              choices: [one_to_one, none]
              sample: one_to_one
        private_ipv4:
          description: The primary private address, the one Kamailio and rtpengine listen on.
          type: str
          returned: success
          sample: 198.18.0.11
        public_ipv4:
          description:
            - The primary public address; null when the host has none.
            - Equal to RV(ansible_facts.itsp_cloud.private_ipv4) when the host's own address is public.
          type: str
          returned: success
          sample: 203.0.113.11
        nat:
          description: NAT kind of the primary interface.
          type: str
          returned: success
          choices: [one_to_one, none]
          sample: one_to_one
        warnings:
          description: What looked wrong but did not stop detection; also shown as task warnings.
          type: list
          elements: str
          returned: success
          sample: []
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.itsp.cluster.plugins.module_utils.cloud_facts import (
    DEFAULT_ENDPOINT,
    PROVIDERS,
    CloudFacts,
    CloudFactsError,
    local_addresses_from,
)


def argument_spec():
    return dict(
        providers=dict(type="list", elements="str", choices=list(PROVIDERS), default=list(PROVIDERS)),
        timeout=dict(type="float", default=1.0),
        metadata_endpoint=dict(type="str", default=DEFAULT_ENDPOINT),
        private_ipv4=dict(type="str"),
        public_ipv4=dict(type="str"),
        validate=dict(type="bool", default=True),
        stun_server=dict(type="str"),
        public_networks=dict(type="list", elements="str", default=[]),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    try:
        facts = CloudFacts(
            local_addresses=local_addresses_from(module.run_command, module.get_bin_path("ip"),
                                                 params["public_networks"]),
            public_networks=params["public_networks"],
            providers=params["providers"],
            timeout=params["timeout"],
            metadata_endpoint=params["metadata_endpoint"],
            private_ipv4=params["private_ipv4"],
            public_ipv4=params["public_ipv4"],
            validate=params["validate"],
            stun_server=params["stun_server"],
        ).gather()
    except CloudFactsError as exc:
        module.fail_json(msg=str(exc))
    for warning in facts["warnings"]:
        module.warn(warning)
    module.exit_json(changed=False, ansible_facts={"itsp_cloud": facts})


if __name__ == "__main__":
    main()
