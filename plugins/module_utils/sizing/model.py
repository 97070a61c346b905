"""The sizing model: what a workload asks of one node, what an instance type offers, and the
tuning values the roles consume. Pure arithmetic; no cloud calls, no Ansible.

Every figure that is not a law of arithmetic lives in DEFAULT_CALIBRATION with the reason it
has the value it has, and can be overridden by the operator (module option ``calibration``).

A role's demand on one node is a pair per resource: ``(fixed, variable)``. ``fixed`` is what
every node carries whatever the fleet size (the full location table under DMQ replication, the
OS, private memory of the processes); ``variable`` is the whole fleet's load, shared by the
nodes that are still up. A node with ``s`` surviving peers fits when, for every resource,
``fixed + variable / s <= capacity * (1 - headroom)``, tested as
``variable <= s * (capacity * (1 - headroom) - fixed)`` so that every caller compares the same
floating-point expression.
"""

import fnmatch
import math

from ansible_collections.itsp.cluster.plugins.module_utils.sizing import replication
from ansible_collections.itsp.cluster.plugins.module_utils.sizing.errors import SizingError

MIB = 1024 * 1024

# Per-packet overhead on the wire, bytes. Ethernet is counted with its 14-byte header and 4-byte
# FCS but without preamble and inter-frame gap: that is how 87.2 kbit/s for G.711/20 ms comes out.
RTP_HEADER_BYTES = 12
UDP_HEADER_BYTES = 8
IPV4_HEADER_BYTES = 20
ETHERNET_BYTES = 18
SRTP_AUTH_TAG_BYTES = 10  # AES_CM_128_HMAC_SHA1_80, no MKI
STREAMS_PER_RELAYED_CALL = 4  # A->relay, relay->B, B->relay, relay->A

# name: (frame length in ms, payload bytes per frame, what it is)
CODECS = {
    "g711": (10, 80, "G.711 u-law/A-law, 64 kbit/s"),
    "g722": (10, 80, "G.722, 64 kbit/s"),
    "g726-32": (10, 40, "G.726, 32 kbit/s"),
    "g729": (10, 10, "G.729, 8 kbit/s"),
    "gsm": (20, 33, "GSM 06.10 full rate, 13.2 kbit/s"),
    "ilbc": (20, 38, "iLBC in 20 ms mode, 15.2 kbit/s"),
    "opus": (10, None, "Opus, variable rate: codec_bitrate_kbps, 32 kbit/s when not given"),
}
CODEC_ALIASES = {
    "pcmu": "g711", "pcma": "g711", "g711u": "g711", "g711a": "g711", "g.711": "g711",
    "g729a": "g729", "g.729": "g729", "g.722": "g722", "g726": "g726-32",
}
OPUS_DEFAULT_KBPS = 32
MAX_PTIME_MS = 120

RESOURCES = ("cpu", "memory_mb", "pps", "bandwidth_gbps", "internet_gbps", "ports")
RESOURCE_UNITS = {
    "cpu": "vCPU", "memory_mb": "MiB", "pps": "packets/s", "bandwidth_gbps": "Gbit/s per direction",
    "internet_gbps": "Gbit/s to the internet", "ports": "UDP ports",
}
ROLES = ("proxy", "media", "combined")

# Every default below is an assumption unless it says "documented"; the `assumptions` list in
# the module result repeats them with the values actually used.
DEFAULT_CALIBRATION = {
    # Kamailio CPU. Measured in the lab (bench/bench_cluster.py): a stateless Kamailio on 2 shared
    # cores answered ~10k OPTIONS/s
    # (with SIPp on the same cores) and ran REGISTER at 5k/s clean, usrloc in memory, no auth.
    "kamailio_options_per_vcpu": 5000,
    # REGISTER at 2.5k/s per vCPU (lab), halved: digest auth makes each registration two
    # transactions (401 challenge, then the authenticated REGISTER).
    "kamailio_registrations_per_vcpu": 1250,
    # A whole call (INVITE/ACK/BYE transactions, dialog, record-route, rtpengine offer/answer/
    # delete) taken as 8 stateless OPTIONS: 5000 / 8. Not measured; calibrate with SIPp.
    "kamailio_call_setups_per_vcpu": 625,
    # SIP over TLS costs this many times SIP over UDP (record crypto on small messages).
    "kamailio_tls_cpu_factor": 1.5,
    # Applying a DMQ-replicated contact or dialog update costs this share of a (digest) registration,
    # and sending one copy to a peer (and taking its 200 OK) kamailio_replication_send_cost.
    # Lab (bench/bench_dmq_wire.py, 2-5 nodes): ~0.10-0.17 ms to apply a copy, ~0.075 ms more on the
    # originating node per extra peer, against ~0.18 ms for an unauthenticated REGISTER (a digest
    # registration is two of them): 0.35 and 0.2, +-30% on shared lab cores.
    "kamailio_replication_cost": 0.35,
    "kamailio_replication_send_cost": 0.2,
    "kamailio_children_per_vcpu": 2,
    "kamailio_children_min": 4,
    "kamailio_children_max": 32,
    "kamailio_tcp_children_without_tls": 4,
    "kamailio_aux_processes": 12,  # timer, ctl, jsonrpc, dmq workers, slow timer, main ...
    "kamailio_pkg_mb": 16,  # private memory per process (Kamailio's default is 8)
    "kamailio_shm_base_mb": 64,  # modules, config, hash tables before any load
    "contact_bytes": 2048,  # one usrloc contact with its AOR record, strings and hash slot
    "dialog_bytes": 4096,  # one dialog with its profiles
    "transaction_bytes": 4096,  # one tm transaction holding request and reply copies
    "transaction_lifetime_s": 5,  # wait timer after the final reply
    "tls_connection_bytes": 49152,  # one OpenSSL session with its buffers
    "sip_packets_per_call": 14,  # INVITE, 180, 200, ACK, BYE, 200 (+100) received and relayed
    "sip_packets_per_registration": 4,  # REGISTER, 401, REGISTER, 200
    "sip_message_bytes": 1000,  # average SIP message on the wire
    "ng_packets_per_relayed_call": 6,  # rtpengine offer, answer, delete and their replies
    # DMQ on the wire (module_utils/sizing/replication.py), bytes as on Ethernet (header, FCS),
    # measured with bench/bench_dmq_wire.py (Kamailio 5.6.3, 3-node mesh, docs/scaling.md).
    "dmq_usrloc_request_bytes": 900,  # measured 779 with SIPp's short AOR/UA; phones add ~120
    "dmq_dialog_request_bytes": 800,  # measured 627 (SIPp URIs, no route set); real calls add ~170
    "dmq_reply_bytes": 420,  # measured 416: the 200 OK every KDMQ gets
    "dmq_dialog_messages_per_call": 5,  # measured: 5 KDMQ per call to each peer (track_cseq_updates on)
    "dmq_ping_interval_s": 15,  # the kamailio role's dmq ping_interval (measured: 15 s)
    "dmq_ping_request_bytes": 525,  # a ping and its reply beyond dmq_reply_bytes, without node lists
    "dmq_ping_bytes_per_node": 36,  # "sip:ADDR:5062;status=active" per node, in request and reply
    # rtpengine CPU, packets (in + out) per vCPU-second. Not measured here; folklore puts
    # userspace at a few hundred relayed G.711 calls per core, kernel forwarding ~5x more.
    "rtpengine_pps_per_vcpu_userspace": 100000,
    "rtpengine_pps_per_vcpu_kernel": 500000,
    "rtpengine_srtp_cpu_factor_userspace": 1.8,
    "rtpengine_srtp_cpu_factor_kernel": 1.4,
    "rtpengine_call_bytes": 32768,  # per relayed call: streams, SSRC contexts, SDP
    "rtpengine_base_mb": 128,
    "rtpengine_port_min": 16384,
    "rtpengine_port_max_limit": 65535,
    "ports_per_relayed_call": 4,  # RTP + RTCP for each of the two legs
    # rtpengine keeps a deleted call (its memory, its 4 ports, and its place under max-sessions)
    # for delete-delay seconds: every call attempt holds a session that long after it ends. The
    # rtpengine role's rtpengine_delete_delay (rtpengine's own default, 30 s).
    "rtpengine_delete_delay_s": 30,
    "os_reserve_mb": 512,  # kernel, sshd, journald, node exporter
    # Packets per second an instance can move (in + out). Clouds do not publish this: an
    # ASSUMPTION, first matching rule (glob on the family, then on the type name) wins.
    "pps_allowance": [
        {"match": "c*gn", "per_vcpu": 250000, "max": 6000000},
        {"match": "c*n", "per_vcpu": 250000, "max": 6000000},
        {"match": "*in", "per_vcpu": 250000, "max": 6000000},
        {"match": "*", "per_vcpu": 100000, "max": 3000000},
    ],
    # EC2: the baseline comes from NetworkCards[].BaselineBandwidthInGbps (documented by AWS).
    # When only "Up to X Gigabit" is known, the baseline is assumed to be this share of X.
    "ec2_up_to_baseline_fraction": 0.05,
    # EC2 types described only by words (older generations): assumed Gbit/s.
    "ec2_named_performance_gbps": {
        "Very Low": 0.05, "Low": 0.1, "Low to Moderate": 0.2, "Moderate": 0.3, "High": 1.0,
    },
    # EC2 traffic through an internet gateway (documented by AWS): 5 Gbit/s for instances with
    # fewer than 32 vCPUs, half the instance bandwidth from 32 vCPUs up.
    "ec2_internet_small_gbps": 5.0,
    "ec2_internet_large_vcpus": 32,
    "ec2_internet_large_fraction": 0.5,
    # GCE: egress of 2 Gbit/s per vCPU up to a per-series cap (documented by Google as a
    # maximum, not a guarantee: used as the baseline here, an ASSUMPTION).
    "gce_gbps_per_vcpu": 2.0,
    "gce_series_cap_gbps": {
        "e2": 16.0, "n1": 32.0, "n2": 32.0, "n2d": 32.0, "c2": 32.0, "c2d": 32.0, "t2d": 32.0,
        "c3": 32.0,
    },
    "gce_default_cap_gbps": 16.0,
    "gce_internet_gbps": 7.0,  # egress to external addresses without Tier_1 networking
    # Per-type overrides, instance type name -> value, for figures the operator has measured.
    "bandwidth_gbps": {},
    "pps": {},
}

# Beyond any fleet this module sizes, and far below where float arithmetic turns into inf or nan.
LARGEST_FIGURE = 1e12


def finite_positive(number):
    """A real number (not a bool), greater than 0, finite and at most LARGEST_FIGURE."""
    return (not isinstance(number, bool) and isinstance(number, (int, float)) and math.isfinite(number)
            and 0 < number <= LARGEST_FIGURE)


def positive_problem(where, number):
    """None for a usable positive figure, else the sentence saying what is wrong with it."""
    if isinstance(number, bool) or not isinstance(number, (int, float)) or number <= 0:
        return f"{where} must be a number greater than 0 (got {number!r})"
    if not finite_positive(number):
        return f"{where} must be a finite number up to {LARGEST_FIGURE:g} (got {number!r})"
    return None


NUMBER_KEYS = tuple(k for k, v in DEFAULT_CALIBRATION.items() if isinstance(v, (int, float)))
# 0 is a meaning, not a mistake: rtpengine deletes ended calls at once.
ZERO_OK_KEYS = ("rtpengine_delete_delay_s",)
FRACTION_KEYS = ("kamailio_replication_cost", "kamailio_replication_send_cost", "ec2_up_to_baseline_fraction",
                 "ec2_internet_large_fraction")


def merge_calibration(overrides):
    """DEFAULT_CALIBRATION with the operator's overrides, checked."""
    calib = {k: (dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v)
             for k, v in DEFAULT_CALIBRATION.items()}
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key not in DEFAULT_CALIBRATION:
            known = ", ".join(sorted(DEFAULT_CALIBRATION))
            raise SizingError(f"unknown calibration key '{key}'; known keys: {known}")
        if key in NUMBER_KEYS:
            problem = positive_problem(f"calibration.{key}", value)
            if problem and key in ZERO_OK_KEYS and not isinstance(value, bool) and isinstance(value, (int, float)):
                problem = None if value == 0 else f"calibration.{key} must be 0 or more (got {value!r})"
            if problem:
                raise SizingError(problem)
            if key in FRACTION_KEYS and value > 1:
                raise SizingError(f"calibration.{key} is a share and must be at most 1 (got {value!r})")
        elif key == "pps_allowance":
            value = _check_pps_rules(value)
        elif key in ("ec2_named_performance_gbps", "gce_series_cap_gbps", "bandwidth_gbps", "pps"):
            value = _check_positive_map(key, value)
        calib[key] = value
    if calib["kamailio_children_min"] > calib["kamailio_children_max"]:
        raise SizingError(f"calibration.kamailio_children_min ({calib['kamailio_children_min']}) is above "
                          f"kamailio_children_max ({calib['kamailio_children_max']})")
    port_min, port_limit = calib["rtpengine_port_min"], calib["rtpengine_port_max_limit"]
    if port_min >= port_limit or port_limit > 65535:
        raise SizingError(f"calibration.rtpengine_port_min ({port_min}) must be below "
                          f"rtpengine_port_max_limit ({port_limit}), which must be at most 65535")
    return calib


def _check_positive_map(key, value):
    if not isinstance(value, dict):
        raise SizingError(f"calibration.{key} must be a mapping of name to number")
    for name, number in value.items():
        problem = positive_problem(f"calibration.{key}.{name}", number)
        if problem:
            raise SizingError(problem)
    return dict(value)


def _check_pps_rules(value):
    if not isinstance(value, list) or not value:
        raise SizingError("calibration.pps_allowance must be a non-empty list of {match, per_vcpu, max}")
    rules = []
    for index, rule in enumerate(value):
        if not isinstance(rule, dict) or set(rule) != {"match", "per_vcpu", "max"}:
            raise SizingError(f"calibration.pps_allowance[{index}] must have exactly the keys match, "
                              "per_vcpu, max")
        for field in ("per_vcpu", "max"):
            number = rule[field]
            problem = positive_problem(f"calibration.pps_allowance[{index}].{field}", number)
            if problem:
                raise SizingError(problem)
        rules.append(dict(rule))
    return rules


# ---------------------------------------------------------------------------------------------
# Workload

def codec_names():
    return ", ".join(sorted(CODECS))


def resolve_codec(name):
    key = str(name).strip().lower()
    key = CODEC_ALIASES.get(key, key)
    if key not in CODECS:
        aliases = ", ".join(sorted(CODEC_ALIASES))
        raise SizingError(f"unknown codec '{name}'; known codecs: {codec_names()} (aliases: {aliases})")
    return key


def stream_figures(codec, ptime_ms, srtp, bitrate_kbps=None):
    """Packets per second and bits per second of one RTP stream on Ethernet."""
    frame_ms, frame_bytes, _ = CODECS[codec]
    if ptime_ms <= 0 or ptime_ms % frame_ms or ptime_ms > MAX_PTIME_MS:
        raise SizingError(f"ptime {ptime_ms} ms does not suit {codec}: use {frame_ms} to {MAX_PTIME_MS} ms "
                          f"in steps of {frame_ms} ms")
    if bitrate_kbps is not None:
        frame_bytes = bitrate_kbps * 1000.0 * frame_ms / 1000.0 / 8.0
    elif frame_bytes is None:
        frame_bytes = OPUS_DEFAULT_KBPS * 1000.0 * frame_ms / 1000.0 / 8.0
    payload = frame_bytes * (ptime_ms // frame_ms)
    overhead = RTP_HEADER_BYTES + UDP_HEADER_BYTES + IPV4_HEADER_BYTES + ETHERNET_BYTES
    if srtp:
        overhead += SRTP_AUTH_TAG_BYTES
    pps = 1000.0 / ptime_ms
    packet_bytes = payload + overhead
    return {"pps": pps, "packet_bytes": packet_bytes, "payload_bytes": payload,
            "bps": pps * packet_bytes * 8.0}


WORKLOAD_FIELDS = {
    # name: (required, default, kind)
    "concurrent_calls": (True, None, "positive"),
    "calls_per_second": (True, None, "positive"),
    "registered_endpoints": (False, 0, "non_negative"),
    "registration_interval": (False, 3600, "positive"),
    "keepalive_interval": (False, 0, "non_negative"),
    "codec": (False, "g711", "codec"),
    "ptime": (False, 20, "positive"),
    "codec_bitrate_kbps": (False, None, "positive_or_none"),
    "media_relay_share": (False, 1.0, "share"),
    "media_internet_share": (False, 1.0, "share"),
    "srtp": (False, False, "bool"),
    "tls_share": (False, 0.0, "share"),
}


def normalise_workload(raw):
    """The workload with defaults filled in and the per-call figures derived; errors say what to fix."""
    raw = dict(raw or {})
    unknown = sorted(set(raw) - set(WORKLOAD_FIELDS))
    if unknown:
        raise SizingError(f"unknown workload field(s) {', '.join(unknown)}; "
                          f"known fields: {', '.join(sorted(WORKLOAD_FIELDS))}")
    wl = {}
    for name, (required, default, kind) in WORKLOAD_FIELDS.items():
        value = raw.get(name)
        if value is None:
            if required:
                raise SizingError(f"workload.{name} is required")
            value = default
        wl[name] = _check_workload_value(name, value, kind)
    wl["codec"] = resolve_codec(wl["codec"])
    if wl["ptime"] != int(wl["ptime"]):
        raise SizingError(f"workload.ptime must be a whole number of milliseconds (got {wl['ptime']!r})")
    wl["ptime"] = int(wl["ptime"])
    stream = stream_figures(wl["codec"], wl["ptime"], wl["srtp"], wl["codec_bitrate_kbps"])
    wl["stream"] = stream
    wl["relayed_calls"] = wl["concurrent_calls"] * wl["media_relay_share"]
    wl["relayed_calls_per_second"] = wl["calls_per_second"] * wl["media_relay_share"]
    wl["registrations_per_second"] = wl["registered_endpoints"] / float(wl["registration_interval"])
    wl["keepalives_per_second"] = (wl["registered_endpoints"] / float(wl["keepalive_interval"])
                                   if wl["keepalive_interval"] else 0.0)
    return wl


def _check_workload_value(name, value, kind):
    if kind == "codec" or (kind == "positive_or_none" and value is None):
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise SizingError(f"workload.{name} must be true or false (got {value!r})")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise SizingError(f"workload.{name} must be a number (got {value!r})") from None
    if not math.isfinite(value) or abs(value) > LARGEST_FIGURE:
        raise SizingError(f"workload.{name} must be a finite number up to {LARGEST_FIGURE:g} (got {value!r})")
    if kind in ("positive", "positive_or_none") and value <= 0:
        raise SizingError(f"workload.{name} must be greater than 0 (got {value:g})")
    if kind == "non_negative" and value < 0:
        raise SizingError(f"workload.{name} must be 0 or more (got {value:g})")
    if kind == "share" and not 0 <= value <= 1:
        raise SizingError(f"workload.{name} is a share and must be between 0 and 1 (got {value:g})")
    return value


# ---------------------------------------------------------------------------------------------
# What an instance type offers

def pps_allowance(itype, calib):
    """(packets per second, the rule that gave it) for one instance type."""
    if itype["name"] in calib["pps"]:
        return float(calib["pps"][itype["name"]]), "calibration.pps override"
    for rule in calib["pps_allowance"]:
        pattern = rule["match"]
        if fnmatch.fnmatchcase(itype["family"], pattern) or fnmatch.fnmatchcase(itype["name"], pattern):
            return (float(min(rule["per_vcpu"] * itype["vcpus"], rule["max"])),
                    f"assumed: {rule['per_vcpu']} per vCPU up to {rule['max']} (rule '{pattern}')")
    return 0.0, "no pps_allowance rule matches"


def capacity(itype, calib):
    """Per-resource capacity of one node of this type, before headroom."""
    ports = calib["rtpengine_port_max_limit"] - calib["rtpengine_port_min"] + 1
    bandwidth = calib["bandwidth_gbps"].get(itype["name"], itype["baseline_gbps"])
    return {
        "cpu": float(itype["vcpus"]),
        "memory_mb": float(itype["memory_mb"]),
        "pps": pps_allowance(itype, calib)[0],
        "bandwidth_gbps": float(bandwidth),
        "internet_gbps": float(min(itype["internet_gbps"], bandwidth)),
        "ports": float(ports),
    }


def effective_capacity(itype, calib, headroom_pct):
    keep = 1.0 - headroom_pct / 100.0
    return {res: value * keep for res, value in capacity(itype, calib).items()}


# ---------------------------------------------------------------------------------------------
# What a role asks of a node

def kamailio_children(itype, calib):
    wanted = calib["kamailio_children_per_vcpu"] * itype["vcpus"]
    return int(max(calib["kamailio_children_min"], min(calib["kamailio_children_max"], math.ceil(wanted))))


def kamailio_tcp_children(itype, wl, calib):
    if wl["tls_share"] > 0:
        return kamailio_children(itype, calib)
    return int(calib["kamailio_tcp_children_without_tls"])


def kamailio_processes(itype, wl, calib):
    return (kamailio_children(itype, calib) + kamailio_tcp_children(itype, wl, calib)
            + int(calib["kamailio_aux_processes"]))


def signalling_rates(wl, calib):
    """SIP transactions and packets per second for the whole fleet."""
    cps = wl["calls_per_second"]
    regs = wl["registrations_per_second"]
    pings = wl["keepalives_per_second"]
    packets = (cps * calib["sip_packets_per_call"] + regs * calib["sip_packets_per_registration"]
               + pings * 2 + cps * wl["media_relay_share"] * calib["ng_packets_per_relayed_call"])
    transactions = cps * 2 + regs * 2 + pings
    return {"packets_per_second": packets, "transactions_per_second": transactions}


def signalling_load(wl, calib):
    """The fleet's own SIP work, before replication: vCPU, packets/s, Gbit/s per direction."""
    tls = 1.0 + wl["tls_share"] * (calib["kamailio_tls_cpu_factor"] - 1.0)
    rates = signalling_rates(wl, calib)
    return {
        "cpu": tls * (wl["calls_per_second"] / calib["kamailio_call_setups_per_vcpu"]
                      + wl["keepalives_per_second"] / calib["kamailio_options_per_vcpu"]
                      + wl["registrations_per_second"] / calib["kamailio_registrations_per_vcpu"]),
        "pps": rates["packets_per_second"],
        "bandwidth_gbps": rates["packets_per_second"] / 2.0 * calib["sip_message_bytes"] * 8.0 / 1e9,
    }


def shm_fixed_mb(wl, calib):
    """Shared memory a proxy holds whatever its share of the traffic: the base, the full location
    table (replicated to every node) and the replication messages it sends in flight."""
    return (calib["kamailio_shm_base_mb"] + wl["registered_endpoints"] * calib["contact_bytes"] / MIB
            + replication_in_flight_mb(wl, calib))


def replication_in_flight_mb(wl, calib):
    """Shared memory the replication messages a node sends take: each KDMQ is a tm transaction kept
    transaction_lifetime_s after its answer, and a node sends the whole cluster's event rate E to
    its peers (E (n - 1) / n, up to E: see replication.py). Measured: 2 peers at 2,000 REGISTER/s
    overran 128 MB and the registrations that found no memory were acknowledged, never replicated."""
    return sum(replication.event_rates(wl, calib)) * calib["transaction_lifetime_s"] * calib["transaction_bytes"] / MIB


def proxy_demand(itype, wl, calib):
    """Kamailio's (fixed, variable) per resource; the OS reserve is added by node_demand."""
    own = signalling_load(wl, calib)
    # DMQ full mesh: with s nodes up each carries L (1 - 1/s) = fixed L, variable -L (see replication.py).
    mesh = replication.demand(wl, calib)
    rates = signalling_rates(wl, calib)
    in_flight = rates["transactions_per_second"] * calib["transaction_lifetime_s"]
    shm_var_mb = (wl["concurrent_calls"] * calib["dialog_bytes"]
                  + in_flight * calib["transaction_bytes"]
                  + wl["registered_endpoints"] * wl["tls_share"] * calib["tls_connection_bytes"]) / MIB
    pkg_mb = calib["kamailio_pkg_mb"] * kamailio_processes(itype, wl, calib)
    return {
        "cpu": (mesh["cpu"][0], own["cpu"] + mesh["cpu"][1]),
        "memory_mb": (shm_fixed_mb(wl, calib) + pkg_mb, shm_var_mb),
        "pps": (mesh["pps"][0], own["pps"] + mesh["pps"][1]),
        # Replication stays on the private network: bandwidth, not internet.
        "bandwidth_gbps": (mesh["bandwidth_gbps"][0], own["bandwidth_gbps"] + mesh["bandwidth_gbps"][1]),
        "internet_gbps": (0.0, own["bandwidth_gbps"]),
        "ports": (0.0, 0.0),
    }


def held_sessions(wl, calib):
    """Ended calls rtpengine still holds at peak: each relayed attempt stays delete-delay seconds
    after its delete, counted against max-sessions, with its memory and ports."""
    return wl["relayed_calls_per_second"] * calib["rtpengine_delete_delay_s"]


def media_demand(itype, wl, calib, forwarding):
    """rtpengine's (fixed, variable) per resource. Media (CPU, packets, bandwidth) comes from the live
    calls; memory and ports from the sessions, the live calls and the ended ones still held."""
    relayed = wl["relayed_calls"]
    sessions = relayed + held_sessions(wl, calib)
    stream = wl["stream"]
    pps = relayed * STREAMS_PER_RELAYED_CALL * stream["pps"]
    cpu = pps / calib[f"rtpengine_pps_per_vcpu_{forwarding}"]
    if wl["srtp"]:
        cpu *= calib[f"rtpengine_srtp_cpu_factor_{forwarding}"]
    # Two streams leave the node and two arrive: the per-direction figure is two streams.
    gbps = relayed * (STREAMS_PER_RELAYED_CALL / 2) * stream["bps"] / 1e9
    return {
        "cpu": (0.0, cpu),
        "memory_mb": (float(calib["rtpengine_base_mb"]), sessions * calib["rtpengine_call_bytes"] / MIB),
        "pps": (0.0, pps),
        "bandwidth_gbps": (0.0, gbps),
        "internet_gbps": (0.0, gbps * wl["media_internet_share"]),
        "ports": (0.0, sessions * calib["ports_per_relayed_call"]),
    }


def node_demand(role, itype, wl, calib, forwarding):
    """(fixed, variable) per resource for one node of ``itype`` running ``role``."""
    parts = []
    if role in ("proxy", "combined"):
        parts.append(proxy_demand(itype, wl, calib))
    if role in ("media", "combined"):
        parts.append(media_demand(itype, wl, calib, forwarding))
    demand = {}
    for res in RESOURCES:
        demand[res] = (sum(p[res][0] for p in parts), sum(p[res][1] for p in parts))
    fixed, variable = demand["memory_mb"]
    demand["memory_mb"] = (fixed + calib["os_reserve_mb"], variable)
    return demand


def fits(demand, cap_eff, survivors):
    """True when one node carries its share with ``survivors`` nodes sharing the load."""
    for res in RESOURCES:
        fixed, variable = demand[res]
        if variable > 0:
            if not variable <= survivors * (cap_eff[res] - fixed):
                return False
        elif fixed > cap_eff[res]:
            return False
    return True


def survivors_needed(demand, cap_eff):
    """(smallest number of surviving nodes that carry the load, binding resource), or (None, res)
    when even one node cannot carry the fixed part of ``res``."""
    need = 1
    binding, binding_ratio = None, -1.0
    for res in RESOURCES:
        fixed, variable = demand[res]
        room = cap_eff[res] - fixed
        if variable > 0:
            if room <= 0:
                return None, res
            ratio = variable / room
            if ratio > binding_ratio:
                binding, binding_ratio = res, ratio
            need = max(need, int(math.ceil(ratio)))
        elif fixed > cap_eff[res]:
            return None, res
    if binding is None:  # no load that the fleet shares: the fullest fixed share binds
        binding = max(RESOURCES, key=lambda r: demand[r][0] / cap_eff[r] if cap_eff[r] > 0 else 0.0)
    # ceil() of a quotient can land one off the product test fits() uses; settle on fits().
    while not fits(demand, cap_eff, need):
        need += 1
    while need > 1 and fits(demand, cap_eff, need - 1):
        need -= 1
    return need, binding


def survivors_of(count, redundancy, zones):
    """Nodes left after the worst failure the fleet must ride out: any ``redundancy`` nodes, or
    (with two or more zones, nodes spread round-robin) the fullest zone, ceil(count / zones)."""
    lost = redundancy
    if zones >= 2:
        lost = max(lost, -(-count // zones))
    return count - lost


def count_valid(count, zones):
    return count >= max(1, zones)


def count_for_survivors(survivors, redundancy, zones):
    """Smallest fleet whose survivors_of() is at least ``survivors``, and what set it."""
    candidates = [(survivors + redundancy, "redundancy" if redundancy else "load")]
    if zones >= 2:
        candidates.append((-(-survivors * zones // (zones - 1)), "zone loss"))
        candidates.append((zones, "one node per zone"))
    count, driver = candidates[0]
    for value, why in candidates[1:]:
        if value > count:
            count, driver = value, why
    return count, driver


def utilisation(demand, cap, nodes):
    """Percent of each resource's capacity used on one node when ``nodes`` share the load."""
    result = {}
    for res in RESOURCES:
        fixed, variable = demand[res]
        if cap[res] <= 0:
            result[res] = None if (fixed or variable) else 0.0
            continue
        result[res] = round(100.0 * (fixed + variable / nodes) / cap[res], 1)
    return result


# ---------------------------------------------------------------------------------------------
# Tuning the roles consume

def round_up(value, step):
    return int(math.ceil(value / float(step)) * step)


def tuning(role, itype, wl, calib, forwarding, survivors, headroom_pct):
    keep = 1.0 - headroom_pct / 100.0
    values = {}
    if role in ("proxy", "combined"):
        proxy = proxy_demand(itype, wl, calib)
        shm = (shm_fixed_mb(wl, calib) + proxy["memory_mb"][1] / survivors) / keep
        values.update({
            "kamailio_children": kamailio_children(itype, calib),
            "kamailio_tcp_children": kamailio_tcp_children(itype, wl, calib),
            "kamailio_shm_memory_mb": max(256, round_up(shm, 64)),
            "kamailio_pkg_memory_mb": int(calib["kamailio_pkg_mb"]),
        })
    if role in ("media", "combined"):
        # What one node must take after the worst failure, within the headroom: its live calls and its
        # share of the call rate (the rtpengine role's max-sessions adds rate x delete-delay to the calls,
        # and its preflight wants 4 ports per session: the range below holds exactly that).
        max_calls = int(math.ceil(wl["relayed_calls"] / survivors / keep))
        rate = math.ceil(round(wl["relayed_calls_per_second"] / survivors / keep * 10, 6)) / 10.0
        delay = int(math.ceil(calib["rtpengine_delete_delay_s"]))
        sessions = max(max_calls, 1) + int(math.ceil(round(rate * delay, 6)))
        ports = sessions * int(calib["ports_per_relayed_call"])
        ports += ports % 2  # RTP on even ports, RTCP on the odd one above
        port_min = int(calib["rtpengine_port_min"])
        values.update({
            "rtpengine_max_calls": max(max_calls, 1),
            "rtpengine_calls_per_second": rate,
            "rtpengine_delete_delay": delay,
            "rtpengine_port_min": port_min,
            "rtpengine_port_max": min(int(calib["rtpengine_port_max_limit"]), port_min + max(ports, 2) - 1),
            "rtpengine_threads": int(itype["vcpus"]),
        })
    return values
