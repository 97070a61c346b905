#!/usr/bin/python
# Copyright: itsp.cluster engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: instance_size
short_description: Size a Kamailio + rtpengine fleet from a SIP workload and a cloud's instance catalog
version_added: 0.1.0
description:
  - Turns a workload (concurrent calls, calls per second, registrations, codec, relayed share, SRTP,
    TLS) and a target (provider, region, families, redundancy, zones, headroom) into the cheapest
    fleet, as count x instance type per role, that carries the load after the worst failure it
    must ride out, with the tuning values the C(kamailio) and C(rtpengine) roles consume.
  - The catalog comes from the cloud. AWS - EC2 C(DescribeInstanceTypes) and
    C(DescribeInstanceTypeOfferings), one paginated call each per region, botocore adaptive
    retries.
    GCE - C(MachineTypesClient.aggregated_list) filtered to the region, or C(MachineTypesClient.list)
    per zone when O(zones) are named, google-api-core Retry on 429/500/502/503/504 and unanswered
    connections. Both clouds try each request at most O(max_attempts) times. C(static) takes the
    catalog from O(catalog) (bare metal, or a cloud the module cannot ask).
  - The catalog is cached per run, in the process and, with O(catalog_cache), in a file that
    later tasks of the same run reuse.
  - Prices come from O(prices), a table the operator supplies; the module does not call a pricing
    API. A candidate type without a price is an error unless O(unpriced=skip).
  - THE MODEL. Media per stream - payload (codec frame bytes x ptime / frame) plus RTP 12, UDP 8,
    IPv4 20 and Ethernet 18 bytes (header and FCS, no preamble), plus a 10-byte SRTP tag with
    O(workload.srtp). G.711 at 20 ms is 50 packets/s and 87.2 kbit/s per direction. A relayed call
    is 4 streams through the relay (2 in, 2 out) - 200 packets/s and 174.4 kbit/s each way for
    G.711/20 ms - and holds 4 UDP ports (RTP and RTCP per leg). RTCP traffic is not counted.
  - Ended calls - rtpengine keeps every deleted call (answered or not) for
    O(calibration.rtpengine_delete_delay_s) seconds with its memory and ports, and counts it against its
    session limit. A relay therefore holds its live calls plus relayed calls per second x delete-delay
    sessions; memory and ports are sized for those sessions, media (CPU, packets, bandwidth) for the live
    calls only.
  - Signalling - CPS x 14 SIP packets per call, registrations per second (endpoints / interval) x 4
    packets (digest challenge), keepalive OPTIONS (endpoints / O(workload.keepalive_interval)), 6 rtpengine
    control packets per relayed call. CPU per vCPU-second comes from O(calibration) - call setups,
    registrations and OPTIONS, x O(calibration.kamailio_tls_cpu_factor) for the TLS share.
  - Memory - every proxy node holds the whole location table (dmq_usrloc full replication), so
    contacts x O(calibration.contact_bytes) is carried by each node whatever the fleet size. Dialogs,
    transactions in flight and TLS connections are shared by the nodes that are up.
    Private memory is O(calibration.kamailio_pkg_mb) per Kamailio process; each node keeps
    O(calibration.os_reserve_mb) for the OS.
  - DMQ replication (full mesh) - every contact change (REGISTER) is sent as one KDMQ request to every
    other proxy, every call as O(calibration.dmq_dialog_messages_per_call) KDMQ to every other proxy, and
    every KDMQ is answered. With E such events per second fleet-wide over n proxies, each proxy sends
    and receives E (n - 1) / n requests and as many replies - 4 E (n - 1) / n packets/s, E (n - 1) / n x
    (request + reply bytes) each way, and CPU of O(calibration.kamailio_replication_cost) (apply) plus
    O(calibration.kamailio_replication_send_cost) (send) of a REGISTER per message. That tends to the
    whole fleet's E on every node, so it is a fixed part of each node's load that adding nodes does not
    dilute. Sizes were measured in the lab (C(bench/bench_dmq_wire.py)). RV(replication) reports it,
    where the mesh stops paying for itself and what to do then; C(docs/scaling.md) has the model.
  - Per-instance limits - vCPUs; memory; packets per second from an ASSUMED allowance table
    (O(calibration.pps_allowance); clouds do not publish one); bandwidth as the BASELINE, never the
    burst figure (EC2 C(BaselineBandwidthInGbps) of the default network card; "Up to X Gigabit" alone
    gives O(calibration.ec2_up_to_baseline_fraction) x X; GCE 2 Gbit/s per vCPU up to a per-series cap,
    an assumption); internet egress (EC2 5 Gbit/s below 32 vCPUs, half the baseline from 32 up; GCE 7
    Gbit/s); UDP ports in rtpengine's range. Burstable and shared-core types are left out.
  - Failures and headroom - a fleet of n nodes spread round-robin over Z zones must carry the whole
    load, with every resource at most (100 - O(headroom))% used, after losing any O(redundancy) nodes
    or, with Z >= 2, its fullest zone (ceil(n/Z) nodes), whichever is more. Survivors are
    s(n) = n - max(k, ceil(n/Z)) (Z >= 2) or n - k, and n >= Z.
  - The optimiser - for each type the smallest working count has a closed form (the survivors
    the load needs, then the smallest n whose s(n) reaches it); combined nodes (Kamailio and
    rtpengine together) take the cheapest type; separate fleets take the cheapest pair within
    O(max_instances) nodes in total through prefix minima over counts. The answer is exact; the unit
    tests compare its cost with a brute-force search on generated catalogs.
  - Every figure that is not arithmetic is in O(calibration) with its default and reason, and is
    repeated in the result's RV(assumptions).
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
    details: Check mode computes the same plan and writes nothing; RV(changed) says whether a run would
      write O(catalog_cache).
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in diff mode).
    support: none
  idempotent:
    description: When run twice in a row with the same arguments, the second run reports no change.
    support: full
    details: With the same catalog, prices and inputs the plan is the same on every run; the second run
      reuses O(catalog_cache) and reports no change.
options:
  provider:
    description: Where the instance catalog comes from.
    type: str
    required: true
    choices: [aws, gce, static]
  region:
    description: Region to size for. Required for O(provider=aws) and O(provider=gce).
    type: str
  zones:
    description:
      - Zones to spread each fleet over. Only types offered in every one of them are candidates,
        and the fleet must survive the loss of any one of them.
      - Mutually exclusive with O(zone_count).
    type: list
    elements: str
  zone_count:
    description:
      - Number of zones to spread over without naming them (for O(provider=static), or to size
        before zones are chosen). Default 1 when O(zones) is not given.
    type: int
  families:
    description:
      - Instance families allowed, as shell-style patterns matched against the family
        (C(c6i), C(n2)) or the whole type name (C(n2-highcpu-*)). Empty allows every family.
    type: list
    elements: str
  architectures:
    description: CPU architectures allowed.
    type: list
    elements: str
    choices: [x86_64, arm64]
    default: [x86_64, arm64]
  max_instances:
    description: Most instances the plan may use, all roles together.
    type: int
    default: 64
  redundancy:
    description: Nodes per fleet that may fail at once (the k of N+k).
    type: int
    default: 1
  headroom:
    description: Percent of every resource kept free on each node after the worst failure.
    type: float
    default: 30
  topology:
    description:
      - C(separate) sizes proxy and media fleets; C(combined) runs both on every node; C(auto)
        takes the cheaper (on a tie, fewer nodes, then separate).
    type: str
    choices: [auto, separate, combined]
    default: auto
  rtpengine_forwarding:
    description: Whether rtpengine forwards in the kernel module or in userspace; sets its CPU cost.
    type: str
    choices: [kernel, userspace]
    default: kernel
  prices:
    description:
      - Hourly price per instance type, a mapping of type name to price. Illustrative tables for the lab's
        stand-ins are in C(playbooks/files/sizing_prices_*.yml); they are not real prices.
    type: dict
  unpriced:
    description:
      - What to do with a candidate type that has no price - C(fail) names them, C(skip) leaves them out.
    type: str
    choices: [fail, skip]
    default: fail
  catalog:
    description:
      - The catalog for O(provider=static) - a list of types with C(name), C(vcpus), C(memory_mb),
        C(baseline_gbps), optional C(internet_gbps) (default the baseline), C(family),
        C(architectures).
    type: list
    elements: dict
  catalog_cache:
    description:
      - File that keeps the fetched catalog so later tasks of the same run do not ask the API again.
        Reused while younger than O(catalog_cache_max_age) seconds and fetched with the same
        provider, region, zones, project, profile and endpoint.
      - Written atomically after a fetch, creating missing directories; that write is the module's only
        side effect and RV(changed) reports it. Check mode never writes it.
      - A path that holds anything but a cache this module wrote (another file, a directory, a link)
        fails the task instead of being replaced.
    type: path
  catalog_cache_max_age:
    description: Seconds a O(catalog_cache) file stays valid.
    type: int
    default: 3600
  replication:
    description:
      - How to judge the DMQ full mesh between proxies (RV(replication)). Its traffic is always sized; these
        only set the verdict and the report.
    type: dict
    suboptions:
      budget:
        description:
          - Percent of a node's usable capacity (after O(headroom)) that replication may take, on any resource,
            before the verdict says to split the cluster (replication groups, shared store). Above 0, at most 100.
        type: float
        default: 25
      transfer_price_per_gb:
        description:
          - Price of one GB crossing zones, for the replicated bytes' cost (an operator figure, like O(prices);
            AWS bills inter-AZ traffic on both sides). 0 leaves the cost out.
        type: float
        default: 0
      growth_nodes:
        description: Mesh sizes for the growth table in RV(replication.growth), 2 to 1000.
        type: list
        elements: int
        default: [2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 40, 50]
  workload:
    description: The traffic to carry at peak.
    type: dict
    required: true
    suboptions:
      concurrent_calls:
        description: Peak concurrent calls. Must be greater than 0.
        type: float
        required: true
      calls_per_second:
        description: Peak call attempts per second. Must be greater than 0.
        type: float
        required: true
      registered_endpoints:
        description: Registered endpoints (contacts). 0 for a trunk-only platform.
        type: float
        default: 0
      registration_interval:
        description: Seconds between re-registrations of one endpoint.
        type: float
        default: 3600
      keepalive_interval:
        description: Seconds between the proxy's NAT keepalive OPTIONS to each endpoint; 0 for none.
        type: float
        default: 0
      codec:
        description:
          - Codec of the relayed media. Known - g711 (pcmu, pcma), g722, g726-32, g729, gsm, ilbc, opus.
        type: str
        default: g711
      ptime:
        description:
          - Packet time in milliseconds, a multiple of the codec's frame (10 ms, 20 ms for gsm and ilbc).
        type: int
        default: 20
      codec_bitrate_kbps:
        description:
          - Payload bit rate for a variable-rate codec (opus, default 32); overrides the table for any codec.
        type: float
      media_relay_share:
        description: Share of calls whose media goes through rtpengine, 0 to 1.
        type: float
        default: 1.0
      media_internet_share:
        description:
          - Share of relayed media that leaves through the internet (counts against the internet cap), 0 to 1.
        type: float
        default: 1.0
      srtp:
        description: Whether relayed media is SRTP (10 more bytes per packet, more CPU).
        type: bool
        default: false
      tls_share:
        description: Share of signalling carried over TLS, 0 to 1.
        type: float
        default: 0.0
  calibration:
    description:
      - Overrides for the model's figures. Each default is stated with where it comes from; those
        marked ASSUMPTION are not measured and should be replaced by the operator's own.
    type: dict
    suboptions:
      kamailio_options_per_vcpu:
        description:
          - Stateless OPTIONS per vCPU-second. Default 5000, from the lab (~10k/s on 2 shared cores,
            bench/bench_cluster.py).
        type: float
      kamailio_registrations_per_vcpu:
        description:
          - Registrations per vCPU-second with digest auth. Default 1250 (lab 5k REGISTER/s on 2 cores, halved
            for the challenge).
        type: float
      kamailio_call_setups_per_vcpu:
        description:
          - Whole calls (INVITE, ACK, BYE, dialog, rtpengine control) per vCPU-second. Default 625, ASSUMPTION
            (8 OPTIONS each).
        type: float
      kamailio_tls_cpu_factor:
        description: CPU cost of SIP over TLS relative to UDP. Default 1.5, ASSUMPTION.
        type: float
      kamailio_replication_cost:
        description:
          - Cost of applying one DMQ-replicated contact or dialog update, as a share of a registration with
            digest auth. Default 0.35 (lab, bench/bench_dmq_wire.py).
        type: float
      kamailio_replication_send_cost:
        description:
          - Cost of sending one KDMQ to one peer and taking its reply, as a share of a registration with digest
            auth. Default 0.2 (lab, the originating proxy's CPU with 1 and 4 peers).
        type: float
      kamailio_children_per_vcpu:
        description: Kamailio UDP children per vCPU. Default 2.
        type: float
      kamailio_children_min:
        description: Fewest UDP children. Default 4.
        type: int
      kamailio_children_max:
        description: Most UDP children. Default 32.
        type: int
      kamailio_tcp_children_without_tls:
        description: TCP children when no signalling uses TLS. Default 4.
        type: int
      kamailio_aux_processes:
        description: Kamailio processes besides the children (timers, ctl, DMQ workers). Default 12.
        type: int
      kamailio_pkg_mb:
        description: Private memory per Kamailio process in MB. Default 16.
        type: int
      kamailio_shm_base_mb:
        description: Shared memory before any load in MB. Default 64.
        type: int
      contact_bytes:
        description: Shared memory per registered contact. Default 2048, ASSUMPTION.
        type: int
      dialog_bytes:
        description: Shared memory per active dialog. Default 4096, ASSUMPTION.
        type: int
      transaction_bytes:
        description: Shared memory per transaction in flight. Default 4096, ASSUMPTION.
        type: int
      transaction_lifetime_s:
        description: Seconds a transaction stays in memory. Default 5 (tm wait timer).
        type: float
      tls_connection_bytes:
        description: Memory per TLS connection. Default 49152, ASSUMPTION.
        type: int
      sip_packets_per_call:
        description: SIP packets through the proxy per call. Default 14.
        type: float
      sip_packets_per_registration:
        description: SIP packets per registration. Default 4.
        type: float
      sip_message_bytes:
        description: Average SIP message on the wire. Default 1000.
        type: float
      ng_packets_per_relayed_call:
        description: rtpengine control packets per relayed call. Default 6.
        type: float
      dmq_usrloc_request_bytes:
        description:
          - One KDMQ carrying one contact, on Ethernet. Default 900 (lab 779 with short test values, plus ~120
            for a phone's user agent, instance and received address).
        type: int
      dmq_dialog_request_bytes:
        description:
          - One KDMQ carrying one dialog update, on Ethernet. Default 800 (lab 627 without a route set, plus
            ~170 for real URIs and a route set).
        type: int
      dmq_reply_bytes:
        description: The reply to one KDMQ, on Ethernet. Default 420 (lab 416).
        type: int
      dmq_dialog_messages_per_call:
        description: KDMQ dialog messages per call to each peer. Default 5 (lab, INVITE/ACK/BYE).
        type: float
      dmq_ping_interval_s:
        description: Seconds between DMQ peer pings (the kamailio role's C(ping_interval)). Default 15.
        type: float
      dmq_ping_request_bytes:
        description:
          - A peer ping and its reply beyond O(calibration.dmq_reply_bytes), without their node lists.
            Default 525 (lab).
        type: int
      dmq_ping_bytes_per_node:
        description: Bytes each node adds to the node list a ping and its reply both carry. Default 36 (lab).
        type: int
      rtpengine_pps_per_vcpu_userspace:
        description: Packets (in + out) per vCPU-second, userspace forwarding. Default 100000, ASSUMPTION.
        type: float
      rtpengine_pps_per_vcpu_kernel:
        description: Packets (in + out) per vCPU-second, kernel forwarding. Default 500000, ASSUMPTION.
        type: float
      rtpengine_srtp_cpu_factor_userspace:
        description: CPU multiplier for SRTP, userspace. Default 1.8, ASSUMPTION.
        type: float
      rtpengine_srtp_cpu_factor_kernel:
        description: CPU multiplier for SRTP, kernel. Default 1.4, ASSUMPTION.
        type: float
      rtpengine_call_bytes:
        description: rtpengine memory per relayed call. Default 32768, ASSUMPTION.
        type: int
      rtpengine_base_mb:
        description: rtpengine memory before any call in MB. Default 128.
        type: int
      rtpengine_port_min:
        description: First port of rtpengine's range. Default 16384.
        type: int
      rtpengine_port_max_limit:
        description: Highest port rtpengine may use. Default 65535.
        type: int
      ports_per_relayed_call:
        description: UDP ports per relayed call. Default 4 (RTP and RTCP per leg).
        type: int
      rtpengine_delete_delay_s:
        description:
          - Seconds rtpengine keeps a deleted call (the rtpengine role's C(rtpengine_delete_delay)). Default 30
            (rtpengine's default). Until then the call keeps its memory and ports and counts against
            max-sessions, so a relay holds O(workload.calls_per_second) x this many ended calls besides the live
            ones. 0 is allowed (deleted at once).
        type: float
      os_reserve_mb:
        description: Memory per node kept for the OS. Default 512.
        type: int
      pps_allowance:
        description:
          - ASSUMED packets per second per instance (in + out), first matching rule wins; C(match) is a
            pattern on the family or type name. Default C(c*gn), C(c*n) and C(*in) 250000 per vCPU up
            to 6000000; C(*) 100000 per vCPU up to 3000000.
        type: list
        elements: dict
      ec2_up_to_baseline_fraction:
        description:
          - Baseline as a share of "Up to X Gigabit" when EC2 gives no baseline. Default 0.05, ASSUMPTION.
        type: float
      ec2_named_performance_gbps:
        description:
          - Gbit/s for EC2 types rated in words. Default Very Low 0.05, Low 0.1, Low to Moderate 0.2, Moderate
            0.3, High 1.0.
        type: dict
      ec2_internet_small_gbps:
        description:
          - EC2 internet egress below O(calibration.ec2_internet_large_vcpus) vCPUs. Default 5.0 (AWS
            documentation).
        type: float
      ec2_internet_large_vcpus:
        description: vCPUs from which EC2 internet egress is a share of the baseline. Default 32.
        type: int
      ec2_internet_large_fraction:
        description: That share. Default 0.5 (AWS documentation).
        type: float
      gce_gbps_per_vcpu:
        description: GCE egress per vCPU. Default 2.0.
        type: float
      gce_series_cap_gbps:
        description:
          - GCE egress cap per series. Default 16 for e2 and 32 for n1, n2, n2d, c2, c2d, t2d, c3; ASSUMPTION.
        type: dict
      gce_default_cap_gbps:
        description: GCE egress cap for other series. Default 16.0.
        type: float
      gce_internet_gbps:
        description: GCE egress to external addresses without Tier_1. Default 7.0.
        type: float
      bandwidth_gbps:
        description: Measured baseline per instance type name, overriding every rule.
        type: dict
      pps:
        description:
          - Measured packets per second per instance type name, overriding O(calibration.pps_allowance).
        type: dict
notes:
  - Nothing but O(catalog_cache) is written; the result is a plan. C(playbooks/size.yml) prints it and can
    write the tuning as group_vars.
seealso:
  - name: Sizing model for operators
    description: docs/sizing.md in this collection explains the model with worked plans.
"""

EXAMPLES = r"""
- name: Size for AWS from a workload and an illustrative price table
  itsp.cluster.instance_size:
    provider: aws
    region: us-east-1
    zones: [us-east-1a, us-east-1b, us-east-1c]
    families: [c6i, c6in, c7g, c7gn, m6i]
    prices: "{{ lookup('ansible.builtin.file', 'files/sizing_prices_aws.yml') | from_yaml }}"
    redundancy: 1
    headroom: 30
    workload:
      concurrent_calls: 20000
      calls_per_second: 200
      registered_endpoints: 500000
      registration_interval: 600
      codec: g711
  register: sizing

- name: Size for GCE against the lab's Compute stand-in, skipping types without a price
  itsp.cluster.instance_size:
    provider: gce
    project: itsp-lab
    region: europe-west1
    endpoint_url: http://127.0.0.1:18602
    auth_kind: anonymous
    families: [n2, n2d, c2d, "n2-highcpu-*"]
    prices: "{{ gce_prices }}"
    unpriced: skip
    workload:
      concurrent_calls: 5000
      calls_per_second: 50
      srtp: true
      tls_share: 0.5

- name: Size bare metal from the servers on hand
  itsp.cluster.instance_size:
    provider: static
    zone_count: 2
    catalog:
      - {name: r650-16c, vcpus: 32, memory_mb: 131072, baseline_gbps: 10}
      - {name: r350-8c, vcpus: 16, memory_mb: 65536, baseline_gbps: 10}
    prices: {r650-16c: 0.9, r350-8c: 0.45}
    calibration:
      pps_allowance:
        - {match: "*", per_vcpu: 300000, max: 8000000}
    workload:
      concurrent_calls: 3000
      calls_per_second: 30
"""

RETURN = r"""
plan:
  description: The cheapest fleet found.
  returned: success
  type: dict
  contains:
    topology:
      description: C(separate) (proxy and media fleets) or C(combined) (both roles on every node).
      type: str
      sample: separate
    cost_per_hour:
      description: Sum of count x price.
      type: float
      sample: 3.1728
    cost_per_month:
      description: C(cost_per_hour) x 730.
      type: float
      sample: 2316.14
    instances:
      description: Instances in the plan.
      type: int
      sample: 8
    roles:
      description:
        - One entry per fleet - C(role) (proxy, media or combined), C(instance_type), C(count),
          C(survivors) (nodes left after the worst failure), C(survivors_needed), C(zones),
          C(price_per_hour), C(cost_per_hour), C(vcpus), C(memory_mb), C(baseline_gbps) with its
          C(bandwidth_rule), C(pps_allowance) with its C(pps_rule), C(binding) (the resource that
          sets the count), C(count_driver) (load, redundancy, zone loss or one node per zone),
          C(utilisation) (percent per resource, C(normal) and C(after_failure)) and C(tuning).
        - C(tuning) holds C(kamailio_children), C(kamailio_tcp_children), C(kamailio_shm_memory_mb),
          C(kamailio_pkg_memory_mb) for proxy nodes and C(rtpengine_max_calls), C(rtpengine_calls_per_second),
          C(rtpengine_delete_delay), C(rtpengine_port_min), C(rtpengine_port_max), C(rtpengine_threads) for
          media nodes (both for combined nodes) - one node's share after the worst failure, within the headroom;
          the port range holds 4 ports for each of the rtpengine role's max-sessions (max calls + calls per
          second x delete delay).
      type: list
      elements: dict
replication:
  description:
    - DMQ full mesh between the plan's proxies (null without a proxy fleet) - C(nodes), C(instance_type),
      C(per_node) (per stream C(registrations), C(dialogs), C(pings) and C(total) - C(requests_per_second)
      sent (as many received, each answered), C(packets_per_second), C(bytes_per_second) each way),
      C(share_of_capacity) (percent of one node, per resource, at this size), C(share_limit) (percent of a
      node's usable capacity as the mesh grows without bound), C(break_even_nodes) (from this size on a node
      spends more on its peers' events than on its own traffic), C(workload_ceiling) (the most times this
      workload any mesh of this type carries), C(efficiency) (share of n independent nodes' capacity the mesh
      delivers), C(next_node_gain) (what one more node adds, as a share of one node), C(budget), C(fleet_gb_per_month),
      C(cross_zone_gb_per_month), C(cross_zone_cost_per_month), C(verdict) (C(full mesh), C(past break-even)
      or C(split)) with C(advice), and C(growth) (one row per mesh size in O(replication.growth_nodes)).
  returned: success
  type: dict
  sample: {"nodes": 3, "verdict": "full mesh", "break_even_nodes": 3, "efficiency": 0.52, "fleet_gb_per_month": 2760.6}
alternatives:
  description: The best C(separate) and C(combined) plans with their cost; null where none fits.
  returned: success
  type: dict
  sample:
    separate:
      cost_per_hour: 3.17
      fleets: ["2 x c7g.2xlarge (proxy)", "6 x c5n.2xlarge (media)"]
    combined: null
workload:
  description:
    - The workload with defaults and the derived figures (per-stream packets and kbit/s, relayed calls, SIP
      rates).
  returned: success
  type: dict
  sample: {"stream_pps": 50.0, "stream_kbps": 87.2, "relayed_calls": 20000.0}
catalog:
  description:
    - Where the catalog came from (C(api), C(file), C(memory), C(option)), how many types were fetched, left
      out and why, and the candidates.
    - C(cache) says what happened to O(catalog_cache) - C(written), C(would write) (check mode), C(read) or
      C(not used).
  returned: success
  type: dict
  sample: {"types_fetched": 1375, "candidates": 66, "skipped_unpriced": [], "source": "api", "cache": "written"}
assumptions:
  description: Every assumption behind the plan, with the values used.
  returned: success
  type: list
  elements: str
table:
  description: The plan as lines of a readable table.
  returned: success
  type: list
  elements: str
error_code:
  description: The cloud's error code when an API call failed.
  returned: failure, when an API call failed
  type: str
  sample: InvalidInstanceType
http_status:
  description: The HTTP status of the failed call, when there was an HTTP answer.
  returned: failure of a cloud call
  type: int
  sample: 403
operation:
  description: The API operation that failed.
  returned: failure of a cloud call
  type: str
  sample: ec2.DescribeInstanceTypeOfferings
attempts:
  description: How many times the failed request was tried (at most O(max_attempts)).
  returned: failure of a cloud call
  type: int
  sample: 5
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.itsp.cluster.plugins.module_utils.errors import ItspError
from ansible_collections.itsp.cluster.plugins.module_utils.sdk import aws as aws_sdk
from ansible_collections.itsp.cluster.plugins.module_utils.sdk import common as sdk_common
from ansible_collections.itsp.cluster.plugins.module_utils.sdk import gce as gce_sdk
from ansible_collections.itsp.cluster.plugins.module_utils.sizing import ec2, gce
from ansible_collections.itsp.cluster.plugins.module_utils.sizing.model import DEFAULT_CALIBRATION
from ansible_collections.itsp.cluster.plugins.module_utils.sizing.planner import SizingManager

CALIBRATION_TYPES = {
    "pps_allowance": ("list", "dict"),
    "ec2_named_performance_gbps": ("dict", None), "gce_series_cap_gbps": ("dict", None),
    "bandwidth_gbps": ("dict", None), "pps": ("dict", None),
}
CALIBRATION_INTS = (
    "kamailio_children_min", "kamailio_children_max", "kamailio_tcp_children_without_tls",
    "kamailio_aux_processes", "kamailio_pkg_mb", "kamailio_shm_base_mb", "contact_bytes", "dialog_bytes",
    "transaction_bytes", "tls_connection_bytes", "rtpengine_call_bytes", "rtpengine_base_mb",
    "dmq_usrloc_request_bytes", "dmq_dialog_request_bytes", "dmq_reply_bytes", "dmq_ping_request_bytes",
    "dmq_ping_bytes_per_node",
    "rtpengine_port_min", "rtpengine_port_max_limit", "ports_per_relayed_call", "os_reserve_mb",
    "ec2_internet_large_vcpus",
)


def calibration_spec():
    spec = {}
    for key in DEFAULT_CALIBRATION:
        if key in CALIBRATION_TYPES:
            kind, elements = CALIBRATION_TYPES[key]
            spec[key] = {"type": kind}
            if elements:
                spec[key]["elements"] = elements
        else:
            spec[key] = {"type": "int" if key in CALIBRATION_INTS else "float"}
    return spec


def argument_spec():
    spec = {
        "provider": {"type": "str", "required": True, "choices": ["aws", "gce", "static"]},
        "region": {"type": "str"},
        "zones": {"type": "list", "elements": "str"},
        "zone_count": {"type": "int"},
        "families": {"type": "list", "elements": "str"},
        "architectures": {"type": "list", "elements": "str", "choices": ["x86_64", "arm64"],
                          "default": ["x86_64", "arm64"]},
        "max_instances": {"type": "int", "default": 64},
        "redundancy": {"type": "int", "default": 1},
        "headroom": {"type": "float", "default": 30},
        "topology": {"type": "str", "choices": ["auto", "separate", "combined"], "default": "auto"},
        "rtpengine_forwarding": {"type": "str", "choices": ["kernel", "userspace"], "default": "kernel"},
        "prices": {"type": "dict"},
        "unpriced": {"type": "str", "choices": ["fail", "skip"], "default": "fail"},
        "catalog": {"type": "list", "elements": "dict"},
        "catalog_cache": {"type": "path"},
        "catalog_cache_max_age": {"type": "int", "default": 3600},
        "workload": {"type": "dict", "required": True, "options": {
            "concurrent_calls": {"type": "float", "required": True},
            "calls_per_second": {"type": "float", "required": True},
            "registered_endpoints": {"type": "float", "default": 0},
            "registration_interval": {"type": "float", "default": 3600},
            "keepalive_interval": {"type": "float", "default": 0},
            "codec": {"type": "str", "default": "g711"},
            "ptime": {"type": "int", "default": 20},
            "codec_bitrate_kbps": {"type": "float"},
            "media_relay_share": {"type": "float", "default": 1.0},
            "media_internet_share": {"type": "float", "default": 1.0},
            "srtp": {"type": "bool", "default": False},
            "tls_share": {"type": "float", "default": 0.0},
        }},
        "calibration": {"type": "dict", "options": calibration_spec()},
        "replication": {"type": "dict", "options": {
            "budget": {"type": "float", "default": 25},
            "transfer_price_per_gb": {"type": "float", "default": 0},
            "growth_nodes": {"type": "list", "elements": "int",
                             "default": [2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 40, 50]},
        }},
    }
    spec.update(sdk_common.argument_spec())
    spec.update(aws_sdk.argument_spec())
    spec.update(gce_sdk.argument_spec())
    return spec


def fetchers(params):
    def aws():
        return ec2.fetch_ec2_records(params["region"], zones=params.get("zones"),
                                     endpoint_url=params.get("endpoint_url"), profile=params.get("profile"),
                                     max_attempts=params["max_attempts"], access_key=params.get("access_key"),
                                     secret_key=params.get("secret_key"), session_token=params.get("session_token"))

    def google():
        return gce.fetch_gce_records(params["project"], params["region"], zones=params.get("zones"),
                                     endpoint=params.get("endpoint_url"), max_attempts=params["max_attempts"],
                                     auth_kind=params.get("auth_kind") or "application",
                                     service_account_file=params.get("service_account_file"),
                                     service_account_contents=params.get("service_account_contents"))

    return {"aws": aws, "gce": google}


def option_problems(params):
    """Rules the argument_spec cannot express; [] when all is well."""
    problems = [sdk_common.endpoint_problem(params.get("endpoint_url")),
                sdk_common.attempts_problem(params.get("max_attempts"))]
    if params["provider"] == "gce":
        problems.append(gce_sdk.project_problem(params.get("project")))
    return [problem for problem in problems if problem]


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        required_if=[
            ("provider", "aws", ("region",)),
            ("provider", "gce", ("region", "project")),
            ("provider", "static", ("catalog",)),
        ] + gce_sdk.REQUIRED_IF,
        mutually_exclusive=[("zones", "zone_count"), ("profile", "access_key")] + gce_sdk.MUTUALLY_EXCLUSIVE,
        required_together=[("access_key", "secret_key")],
        supports_check_mode=True,
    )
    problems = option_problems(module.params)
    if problems:
        module.fail_json(msg="; ".join(problems))
    provider = module.params["provider"]
    if provider == "aws" and not ec2.HAS_BOTO3:
        module.fail_json(msg=missing_required_lib("boto3"))
    if provider == "gce" and not gce.HAS_GOOGLE:
        module.fail_json(msg=missing_required_lib("google-cloud-compute"))
    try:
        result = SizingManager(module.params, fetchers(module.params), check_mode=module.check_mode).run()
    except ItspError as exc:
        module.fail_json(msg=exc.msg, **exc.as_result())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
