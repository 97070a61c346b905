#!/usr/bin/env python3
"""The itsp.cluster lab: systemd hosts behind a kernel 1-to-1 NAT, on this one machine.

    labctl.py up --spec SPEC.json     build (or reuse) the lab described by SPEC
    labctl.py down                    tear down everything the lab made (idempotent)
    labctl.py status                  JSON: hosts, addresses, clouds, what is running
    labctl.py pub -- CMD...           run CMD on the public side (the "internet")
    labctl.py exec HOST -- CMD...     run CMD inside a lab host (nsenter, like a console)
    labctl.py power-off HOST          pull the plug (SIGKILL, link down); power-on HOST boots it again

Topology (all names start with "itsp", so teardown only ever touches what it made):

    controller (root ns) 198.18.0.1 on bridge itspbr0   <- Ansible SSH, apt cache :3142,
                                                           EC2 API :5000 (moto, AWS hosts as instances)
        | veth vh-NAME                      | veth itsp-edge-in
    host NAME (netns itsph-NAME, nspawn)    edge (netns itsp-edge) 198.18.0.254
      eth0 198.18.0.x, gw .254                1-to-1 NAT (nft): PUB <-> PRIV
                                              169.254.169.254: metadata stand-in
                                            | veth itsp-edge-out 203.0.113.1
                                          public side (netns itsp-pub) 203.0.113.200, 198.51.100.200

Caches kept machine-wide (a second run is fast, a fresh machine builds them by itself):
/var/cache/itsp-cluster/lab/template (debootstrap'd bookworm), .../apt (apt-cacher-ng), .../ssh.
"""

import argparse
import contextlib
import hashlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.environ.get("ITSP_LAB_CACHE", "/var/cache/itsp-cluster/lab")
TEMPLATE = os.path.join(CACHE, "template")
SSH_DIR = os.path.join(CACHE, "ssh")
SSH_KEY = os.path.join(SSH_DIR, "id_ed25519")
APT_CACHE = os.path.join(CACHE, "apt")
HOSTS_DIR = "/var/lib/itsp-cluster/lab/hosts"
RUN = "/run/itsp-lab"
STATE = os.path.join(RUN, "state.json")

BRIDGE = "itspbr0"
CONTROLLER_IP = "198.18.0.1"
PRIVATE_NET = ipaddress.ip_network("198.18.0.0/24")
EDGE_NS, EDGE_IN, EDGE_OUT, EDGE_PRIV_IP, EDGE_PUB_IP = (
    "itsp-edge", "itsp-edge-in", "itsp-edge-out", "198.18.0.254", "203.0.113.1")
PUB_NS, PUB_IF = "itsp-pub", "itsp-pub0"
# Public-side addresses: SIP clients (203.0.113.200), a carrier (198.51.100.200), a customer
# PBX trunk (.201), strangers and attackers (.202, .203), one more trunk (.204).
PUB_CLIENT_IPS = ("203.0.113.200", "198.51.100.200", "198.51.100.201", "198.51.100.202", "198.51.100.203",
                  "198.51.100.204")
PUBLIC_NETS = (ipaddress.ip_network("203.0.113.0/24"), ipaddress.ip_network("198.51.100.0/24"))
METADATA_IP = "169.254.169.254"
APT_PORT = 3142

# What the template holds. Bump TEMPLATE_VERSION (or change the list) and the next `up` rebuilds it.
TEMPLATE_VERSION = "2"
TEMPLATE_PACKAGES = ["systemd", "systemd-sysv", "dbus", "openssh-server", "python3", "python3-apt",
                     "iproute2", "netbase", "procps", "nftables", "ca-certificates"]
TEMPLATE_MIN_FREE_GB = 3
CLOUDS = ("aws", "gce", "azure", "metal")
CLOUD_DEFAULTS = {
    "aws": {"region": "eu-west-1", "zone": "eu-west-1a", "instance_type": "c6i.large"},
    "gce": {"region": "europe-west1", "zone": "europe-west1-b", "instance_type": "n2-standard-2"},
    "azure": {"region": "westeurope", "zone": "1", "instance_type": "Standard_F2s_v2"},
    "metal": {"region": None, "zone": None, "instance_type": None},
}


class LabError(Exception):
    """A problem the operator can act on; printed without a traceback."""


def log(msg):
    print(f"lab: {msg}", file=sys.stderr, flush=True)


def sh(*cmd, check=True, capture=False, netns=None, timeout=600, input_text=None):
    if netns:
        cmd = ("ip", "netns", "exec", netns) + cmd
    res = subprocess.run(cmd, check=False, text=True, timeout=timeout, input=input_text,
                         stdout=subprocess.PIPE if capture else None,
                         stderr=subprocess.PIPE if capture else None)
    if check and res.returncode != 0:
        detail = (res.stderr or "").strip() if capture else ""
        raise LabError(f"command failed ({res.returncode}): {' '.join(cmd)} {detail}")
    return res


def link_exists(name, netns=None):
    return sh("ip", "link", "show", name, check=False, capture=True, netns=netns).returncode == 0


def netns_exists(name):
    return os.path.exists(f"/run/netns/{name}")


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, TypeError):
        return False
    except PermissionError:
        return True
    # A zombie (our own unreaped child) is not alive.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def read_pid(path):
    try:
        with open(path) as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


def stop_pid(pid, grace=10.0):
    if not pid or not pid_alive(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.1)
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def spawn(cmd, logfile, netns=None):
    """Start a long-running daemon detached from us (own session), return its PID."""
    if netns:
        cmd = ["ip", "netns", "exec", netns] + cmd
    with open(logfile, "ab") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                start_new_session=True)
    return proc.pid


# --------------------------------------------------------------------------------------------
# Spec


def load_spec(path):
    with open(path) as fh:
        text = fh.read()
    try:
        spec = json.loads(text)
    except ValueError:
        try:
            import yaml  # available wherever ansible is
        except ImportError as exc:
            raise LabError(f"{path}: not JSON and PyYAML is not installed") from exc
        spec = yaml.safe_load(text)
    return normalise_spec(spec, path)


def normalise_spec(spec, origin="spec"):
    if not isinstance(spec, dict) or not isinstance(spec.get("hosts"), list) or not spec["hosts"]:
        raise LabError(f"{origin}: needs a non-empty 'hosts' list")
    seen_names, seen_ips = set(), set()
    hosts = []
    for i, h in enumerate(spec["hosts"]):
        where = f"{origin}: hosts[{i}]"
        name = str(h.get("name", ""))
        if not name or len(name) > 11 or not name.replace("-", "").isalnum():
            raise LabError(f"{where}.name {name!r}: use 1-11 letters, digits or '-' (it names a veth)")
        try:
            priv = ipaddress.ip_address(str(h.get("private_ipv4")))
        except ValueError as exc:
            raise LabError(f"{where}.private_ipv4 must be an IPv4 address in {PRIVATE_NET}") from exc
        if priv not in PRIVATE_NET or str(priv) in (CONTROLLER_IP, EDGE_PRIV_IP) or priv in (
                PRIVATE_NET.network_address, PRIVATE_NET.broadcast_address):
            raise LabError(f"{where}.private_ipv4 {priv} must be a free host address in {PRIVATE_NET} "
                           f"(.1 and .254 are the controller and the edge)")
        pub = h.get("public_ipv4") or None  # "" from a template means none, too
        if pub is not None:
            try:
                pub = ipaddress.ip_address(str(pub))
            except ValueError as exc:
                raise LabError(f"{where}.public_ipv4 {pub!r} is not an IPv4 address") from exc
            if not any(pub in n for n in PUBLIC_NETS) or str(pub) in (EDGE_PUB_IP,) + PUB_CLIENT_IPS:
                raise LabError(f"{where}.public_ipv4 {pub} must be a free address in 203.0.113.0/24 or "
                               f"198.51.100.0/24 (.1 is the edge, .200 the public clients)")
            pub = str(pub)
        cloud = h.get("cloud", "aws")
        if cloud not in CLOUDS:
            raise LabError(f"{where}.cloud {cloud!r}: choose one of {', '.join(CLOUDS)}")
        if name in seen_names or str(priv) in seen_ips or (pub and pub in seen_ips):
            raise LabError(f"{where}: name or address used twice")
        seen_names.add(name)
        seen_ips.update({str(priv), pub} - {None})
        defaults = CLOUD_DEFAULTS[cloud]
        hosts.append({
            "name": name, "private_ipv4": str(priv), "public_ipv4": pub, "cloud": cloud,
            "region": h.get("region", defaults["region"]), "zone": h.get("zone", defaults["zone"]),
            "instance_type": h.get("instance_type", defaults["instance_type"]),
            "azure_public_via": h.get("azure_public_via"),
            "fault": h.get("fault"),
            "groups": sorted(str(g) for g in h.get("groups") or []),
            "ec2_roles": normalise_ec2_roles(h.get("ec2_roles"), where),
            "floating": normalise_floating(h.get("floating"), where),
        })
    return {"hosts": hosts, "elastic_ips": normalise_elastic_ips(spec, hosts, origin)}


def normalise_ec2_roles(roles, where):
    """An aws host's itsp:role tag when it is not to follow its groups (None: it follows them): a
    host the scenario's converge leaves alone (no groups) that inventories/aws must still find."""
    if roles is None or roles == "":  # "" from a template means none, too
        return None
    if not isinstance(roles, list) or any(r not in EC2_ROLE_GROUPS for r in roles):
        raise LabError(f"{where}.ec2_roles {roles!r}: a list of {', '.join(EC2_ROLE_GROUPS)} (or absent: "
                       f"the host's groups)")
    return sorted(set(roles))


def normalise_floating(entries, where):
    """A host's floating addresses (a VIP keepalived moves between hosts): [{private_ipv4,
    public_ipv4}]; the edge maps each public one 1-to-1 to the private one, wherever it lives."""
    out = []
    for j, f in enumerate(entries or []):
        try:
            priv = ipaddress.ip_address(str(f.get("private_ipv4")))
            pub = ipaddress.ip_address(str(f.get("public_ipv4")))
        except (ValueError, AttributeError) as exc:
            raise LabError(f"{where}.floating[{j}] needs private_ipv4 and public_ipv4 addresses") from exc
        if priv not in PRIVATE_NET or not any(pub in n for n in PUBLIC_NETS) or str(pub) in (
                (EDGE_PUB_IP,) + PUB_CLIENT_IPS):
            raise LabError(f"{where}.floating[{j}]: {priv} must be in {PRIVATE_NET} and {pub} a free address "
                           f"in 203.0.113.0/24 or 198.51.100.0/24")
        out.append({"private_ipv4": str(priv), "public_ipv4": str(pub)})
    return out


def floating_mappings(spec):
    """Every floating address of the spec, once: {public: private}."""
    return {f["public_ipv4"]: f["private_ipv4"] for h in spec["hosts"] for f in h.get("floating") or []}


def host_mac(private_ipv4):
    """Deterministic MAC from the address, so the metadata stand-in can tell it."""
    octets = ipaddress.ip_address(private_ipv4).packed
    return "02:" + ":".join(f"{b:02x}" for b in (0x18, octets[0] ^ 0xC6, octets[1], octets[2], octets[3]))


def metadata_config(spec, ec2=None):
    """ec2: what up_ec2_api registered; an AWS host's instance-id is then the one the EC2 API knows."""
    hosts = {}
    registered = (ec2 or {}).get("instances", {})
    for h in spec["hosts"]:
        digest = hashlib.sha1(h["name"].encode()).hexdigest()  # noqa: S324 - an id, not security
        ids = {"aws": registered.get(h["name"], {}).get("instance_id") or "i-0" + digest[:16],
               "gce": str(int(digest[:15], 16)),
               "azure": f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}",
               "metal": None}
        hosts[h["private_ipv4"]] = {
            "cloud": h["cloud"], "name": h["name"], "instance_id": ids[h["cloud"]],
            "instance_type": h["instance_type"], "region": h["region"], "zone": h["zone"],
            "mac": host_mac(h["private_ipv4"]), "private_ipv4": h["private_ipv4"],
            "public_ipv4": h["public_ipv4"], "ipv6": [], "hop_limit": 2,
            "azure_public_via": h["azure_public_via"] or "instance", "fault": h["fault"],
        }
    return {"hosts": hosts}


# --------------------------------------------------------------------------------------------
# Machine-wide caches: apt mirror, template, SSH key


def debian_mirrors():
    """The mirror URIs apt on this machine already uses (never hard-coded here)."""
    main, security = None, None
    files = ["/etc/apt/sources.list"]
    d = "/etc/apt/sources.list.d"
    if os.path.isdir(d):
        files += [os.path.join(d, f) for f in sorted(os.listdir(d))]
    for path in files:
        if not os.path.isfile(path):
            continue
        with open(path) as fh:
            text = fh.read()
        if path.endswith(".sources"):
            for stanza in text.split("\n\n"):
                fields = {}
                for line in stanza.splitlines():
                    if ":" in line and not line.startswith("#"):
                        k, v = line.split(":", 1)
                        fields[k.strip()] = v.strip()
                uri, suites = fields.get("URIs", "").split(), fields.get("Suites", "").split()
                if uri and "bookworm" in suites and not main:
                    main = uri[0]
                if uri and "bookworm-security" in suites and not security:
                    security = uri[0]
        else:
            for line in text.splitlines():
                parts = line.split()
                if len(parts) >= 3 and parts[0] == "deb" and not parts[1].startswith("["):
                    if parts[2] == "bookworm" and not main:
                        main = parts[1]
                    if parts[2] == "bookworm-security" and not security:
                        security = parts[1]
    if not main:
        raise LabError("no Debian bookworm mirror found in /etc/apt/sources.list*: configure apt first")
    return main.rstrip("/"), (security or "").rstrip("/") or None


def ensure_ssh_key():
    os.makedirs(SSH_DIR, mode=0o700, exist_ok=True)
    if not os.path.exists(SSH_KEY):
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "itsp-lab", "-f", SSH_KEY)
    with open(SSH_KEY + ".pub") as fh:
        return fh.read()


def free_gb(path):
    os.makedirs(path, exist_ok=True)
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize / 2**30


def template_stamp():
    return json.dumps({"version": TEMPLATE_VERSION, "packages": TEMPLATE_PACKAGES}, sort_keys=True)


def ensure_template():
    stamp_file = os.path.join(TEMPLATE, ".itsp-template")
    if os.path.exists(stamp_file):
        with open(stamp_file) as fh:
            if fh.read() == template_stamp():
                return False
        log("template is outdated: rebuilding")
    have = free_gb(CACHE)
    if have < TEMPLATE_MIN_FREE_GB:
        raise LabError(f"only {have:.1f} GiB free under {CACHE}; building the host template needs "
                       f"{TEMPLATE_MIN_FREE_GB} GiB: free some disk or set ITSP_LAB_CACHE")
    mirror, security = debian_mirrors()
    tmp = TEMPLATE + ".building"
    shutil.rmtree(tmp, ignore_errors=True)
    log(f"building the host template with debootstrap (once per machine, ~2 min) into {TEMPLATE}")
    t0 = time.monotonic()
    sh("debootstrap", "--variant=minbase", "--include=" + ",".join(TEMPLATE_PACKAGES),
       "bookworm", tmp, mirror, capture=True, timeout=1200)
    # Clones must not share a machine-id: empty file = systemd makes one at each boot.
    with open(os.path.join(tmp, "etc/machine-id"), "w"):
        pass
    dbus_id = os.path.join(tmp, "var/lib/dbus/machine-id")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(dbus_id)
    os.makedirs(os.path.dirname(dbus_id), exist_ok=True)
    os.symlink("/etc/machine-id", dbus_id)
    lines = [f"deb {mirror} bookworm main", f"deb {mirror} bookworm-updates main"]
    if security:
        lines.append(f"deb {security} bookworm-security main")
    with open(os.path.join(tmp, "etc/apt/sources.list"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    with open(os.path.join(tmp, "etc/apt/apt.conf.d/01itsp-lab"), "w") as fh:
        fh.write(f'Acquire::http::Proxy "http://{CONTROLLER_IP}:{APT_PORT}";\n'
                 'APT::Install-Recommends "false";\n')
    # No DNS in the lab: resolve nothing, wait for nothing.
    with open(os.path.join(tmp, "etc/resolv.conf"), "w") as fh:
        fh.write("# itsp lab: no DNS\n")
    with open(os.path.join(tmp, "etc/ssh/sshd_config.d/itsp-lab.conf"), "w") as fh:
        fh.write("PermitRootLogin prohibit-password\nUseDNS no\n")
    # Nothing in a container needs these and they slow the boot.
    for unit in ("systemd-networkd-wait-online.service", "apt-daily.timer", "apt-daily-upgrade.timer",
                 "e2scrub_all.timer", "fstrim.timer"):
        with contextlib.suppress(FileNotFoundError, FileExistsError):
            os.symlink("/dev/null", os.path.join(tmp, "etc/systemd/system", unit))
    shutil.rmtree(os.path.join(tmp, "var/cache/apt/archives"), ignore_errors=True)
    os.makedirs(os.path.join(tmp, "var/cache/apt/archives/partial"), exist_ok=True)
    with open(os.path.join(tmp, ".itsp-template"), "w") as fh:
        fh.write(template_stamp())
    shutil.rmtree(TEMPLATE, ignore_errors=True)
    os.rename(tmp, TEMPLATE)
    log(f"template built in {time.monotonic() - t0:.0f} s")
    return True


# --------------------------------------------------------------------------------------------
# State: what this lab made, so `down` removes exactly that


def load_state():
    try:
        with open(STATE) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def save_state(state):
    os.makedirs(RUN, exist_ok=True)
    tmp = STATE + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(state, fh, indent=2)
    os.replace(tmp, STATE)


# --------------------------------------------------------------------------------------------
# Network


def up_network(spec):
    if not link_exists(BRIDGE):
        sh("ip", "link", "add", BRIDGE, "type", "bridge")
        sh("ip", "addr", "add", f"{CONTROLLER_IP}/24", "dev", BRIDGE)
    sh("ip", "link", "set", BRIDGE, "up")
    for ns in (EDGE_NS, PUB_NS):
        if not netns_exists(ns):
            sh("ip", "netns", "add", ns)
        sh("ip", "link", "set", "lo", "up", netns=ns)
    if not link_exists(EDGE_IN):
        sh("ip", "link", "add", EDGE_IN, "type", "veth", "peer", "name", "eth-priv", "netns", EDGE_NS)
        sh("ip", "link", "set", EDGE_IN, "master", BRIDGE, "up")
        sh("ip", "addr", "add", f"{EDGE_PRIV_IP}/24", "dev", "eth-priv", netns=EDGE_NS)
        sh("ip", "addr", "add", f"{METADATA_IP}/32", "dev", "lo", netns=EDGE_NS)
        sh("ip", "link", "set", "eth-priv", "up", netns=EDGE_NS)
    if not link_exists(EDGE_OUT, netns=EDGE_NS):
        sh("ip", "link", "add", EDGE_OUT, "netns", EDGE_NS, "type", "veth", "peer", "name", PUB_IF,
           "netns", PUB_NS)
        sh("ip", "addr", "add", f"{EDGE_PUB_IP}/24", "dev", EDGE_OUT, netns=EDGE_NS)
        sh("ip", "addr", "add", "198.51.100.1/24", "dev", EDGE_OUT, netns=EDGE_NS)
        sh("ip", "link", "set", EDGE_OUT, "up", netns=EDGE_NS)
        for address in PUB_CLIENT_IPS:
            sh("ip", "addr", "add", f"{address}/24", "dev", PUB_IF, netns=PUB_NS)
        sh("ip", "link", "set", PUB_IF, "up", netns=PUB_NS)
        sh("ip", "route", "add", "default", "via", EDGE_PUB_IP, netns=PUB_NS)
    sh("sysctl", "-qw", "net.ipv4.ip_forward=1", netns=EDGE_NS)
    # Public addresses live on the edge (it answers ARP for them); nft maps them 1-to-1.
    for h in spec["hosts"]:
        if h["public_ipv4"]:
            sh("ip", "addr", "replace", f"{h['public_ipv4']}/32", "dev", EDGE_OUT, netns=EDGE_NS)
    for public in floating_mappings(spec):
        sh("ip", "addr", "replace", f"{public}/32", "dev", EDGE_OUT, netns=EDGE_NS)
    sh("nft", "-f", "-", netns=EDGE_NS, input_text=nat_ruleset(spec))


def nat_ruleset(spec):
    dnat = "\n".join(f"    ip daddr {h['public_ipv4']} dnat to {h['private_ipv4']}"
                     for h in spec["hosts"] if h["public_ipv4"])
    snat = "\n".join(f"    ip saddr {h['private_ipv4']} oifname \"{EDGE_OUT}\" snat to {h['public_ipv4']}"
                     for h in spec["hosts"] if h["public_ipv4"])
    for public, private in floating_mappings(spec).items():
        dnat += f"\n    ip daddr {public} dnat to {private}"
        snat += f"\n    ip saddr {private} oifname \"{EDGE_OUT}\" snat to {public}"
    metal = [h["private_ipv4"] for h in spec["hosts"] if h["cloud"] == "metal"]
    # Bare-metal hosts have no metadata service: refuse fast, like a rack with no 169.254 route.
    metal_rule = (f"    ip saddr {{ {', '.join(metal)} }} ip daddr {METADATA_IP} tcp dport 80 "
                  f"reject with tcp reset" if metal else "")
    return f"""table ip itsp_lab
delete table ip itsp_lab
table ip itsp_lab {{
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
{dnat}
  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
{snat}
  }}
  chain input {{
    type filter hook input priority filter; policy accept;
{metal_rule}
  }}
}}
"""


# --------------------------------------------------------------------------------------------
# Services on the controller and the edge


def up_apt_cache():
    pidfile = os.path.join(RUN, "apt-cacher-ng.pid")
    if pid_alive(read_pid(pidfile)):
        return
    mirror, security = debian_mirrors()
    conf = os.path.join(RUN, "acng")
    os.makedirs(conf, exist_ok=True)
    os.makedirs(APT_CACHE, exist_ok=True)
    os.makedirs(os.path.join(RUN, "acng-log"), exist_ok=True)
    with open(os.path.join(conf, "backends_debian"), "w") as fh:
        fh.write(mirror + "/\n")
    with open(os.path.join(conf, "backends_debsec"), "w") as fh:
        fh.write((security or mirror + "-security") + "/\n")
    with open(os.path.join(conf, "acng.conf"), "w") as fh:
        fh.write(f"""CacheDir: {APT_CACHE}
LogDir: {RUN}/acng-log
SupportDir: /usr/lib/apt-cacher-ng
Port: {APT_PORT}
BindAddress: {CONTROLLER_IP}
PidFile: {pidfile}
ForeGround: 1
Remap-debrep: file:deb_mirror*.gz /debian ; file:backends_debian
Remap-secdeb: /debian-security ; file:backends_debsec
ExThreshold: 4
""")
    pid = spawn(["apt-cacher-ng", "-c", conf], os.path.join(RUN, "apt-cacher-ng.log"))
    with open(pidfile, "w") as fh:
        fh.write(str(pid))
    wait_tcp(CONTROLLER_IP, APT_PORT, "apt-cacher-ng", os.path.join(RUN, "apt-cacher-ng.log"))


def up_metadata(spec, ec2=None):
    cfg = os.path.join(RUN, "metadata.json")
    new = json.dumps(metadata_config(spec, ec2), indent=2, sort_keys=True)
    pidfile = os.path.join(RUN, "metadata.pid")
    old = None
    with contextlib.suppress(OSError), open(cfg) as fh:
        old = fh.read()
    if old == new and pid_alive(read_pid(pidfile)):
        return
    stop_pid(read_pid(pidfile))
    with open(cfg, "w") as fh:
        fh.write(new)
    server = os.path.join(HERE, "metadata_server.py")
    if not os.path.exists(server):
        raise LabError(f"{server} is missing: the metadata stand-in cannot start")
    logfile = os.path.join(RUN, "metadata.log")
    pid = spawn([sys.executable, server, "--config", cfg, "--bind", METADATA_IP, "--port", "80"],
                logfile, netns=EDGE_NS)
    with open(pidfile, "w") as fh:
        fh.write(str(pid))
    wait_tcp(METADATA_IP, 80, "metadata stand-in", logfile, netns=EDGE_NS)


STUN_PORT = 3478


def up_stun():
    """A STUN server on the public side, for bare-metal hosts to discover their NATed address."""
    pidfile = os.path.join(RUN, "stun.pid")
    if pid_alive(read_pid(pidfile)):
        return
    pid = spawn([sys.executable, os.path.join(HERE, "stun_server.py"), "--bind", PUB_CLIENT_IPS[0],
                 "--port", str(STUN_PORT)], os.path.join(RUN, "stun.log"), netns=PUB_NS)
    with open(pidfile, "w") as fh:
        fh.write(str(pid))


# --------------------------------------------------------------------------------------------
# The EC2 API (moto) and the Elastic IP NAT that follows it

EC2_API_PORT = 5000  # moto's own default port, on the controller's bridge address
EC2_PIDFILES = ("eip-nat.pid", "ec2-api.pid")
# Inventory groups that become the itsp:role tag (comma-separated), what inventories/aws groups by;
# a host's ec2_roles, when given, names them instead of its groups.
EC2_ROLE_GROUPS = ("kamailio", "rtpengine")


def normalise_elastic_ips(spec, hosts, origin):
    """Optional `elastic_ips: [{public_ipv4, host (name or null), region}]`, or per host
    `elastic_ips: [ADDRESS, ...]` (associated with that host first): floating addresses besides the
    hosts' own (an AWS host's public_ipv4 is already an Elastic IP associated with it)."""
    by_name = {h["name"]: h for h in hosts}
    taken = {h["public_ipv4"] for h in hosts} | {EDGE_PUB_IP, *PUB_CLIENT_IPS}
    wanted = [(f"{origin}: elastic_ips[{i}]", e) for i, e in enumerate(spec.get("elastic_ips") or [])]
    for i, h in enumerate(spec["hosts"]):
        wanted += [(f"{origin}: hosts[{i}].elastic_ips[{j}]", {"public_ipv4": a, "host": h.get("name")})
                   for j, a in enumerate(h.get("elastic_ips") or [])]
    result = []
    for where, e in wanted:
        if not isinstance(e, dict):
            raise LabError(f"{where}: expected {{public_ipv4, host, region}}")
        try:
            pub = ipaddress.ip_address(str(e.get("public_ipv4")))
        except ValueError as exc:
            raise LabError(f"{where}.public_ipv4 must be an IPv4 address") from exc
        if not any(pub in n for n in PUBLIC_NETS) or str(pub) in taken:
            raise LabError(f"{where}.public_ipv4 {pub} must be a free address in 203.0.113.0/24 or "
                           f"198.51.100.0/24")
        taken.add(str(pub))
        owner = e.get("host")
        if owner is not None and (owner not in by_name or by_name[owner]["cloud"] != "aws"):
            raise LabError(f"{where}.host {owner!r} must be the name of an aws host of the spec, or null")
        region = e.get("region") or (by_name[owner]["region"] if owner else CLOUD_DEFAULTS["aws"]["region"])
        result.append({"public_ipv4": str(pub), "host": owner, "region": region})
    return result


def ec2_api_available():
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("moto", "boto3"))


def ec2_tags(h):
    tags = {"Name": h["name"], "itsp:cluster": "lab"}
    roles = h.get("ec2_roles")
    if roles is None:
        roles = [g for g in h["groups"] if g in EC2_ROLE_GROUPS]
    if roles:
        tags["itsp:role"] = ",".join(roles)
    return tags


def up_ec2_api(spec):
    """moto's EC2 API on CONTROLLER_IP:EC2_API_PORT (the hosts reach it over the bridge), every aws
    host registered as an instance with its own addresses and tags, and lab/eip_nat.py keeping the
    edge's NAT for Elastic IPs equal to their associations. Returns what it registered (lab state)."""
    aws = [h for h in spec["hosts"] if h["cloud"] == "aws"]
    if not aws and not spec["elastic_ips"]:
        return None
    if not ec2_api_available():
        if spec["elastic_ips"]:
            raise LabError("the spec has elastic_ips but moto/boto3 are not installed: run labctl.py with the "
                           "venv of scripts/bootstrap.sh")
        log("moto is not installed (the venv of scripts/bootstrap.sh has it): no EC2 API in this lab, "
            "the AWS hosts' public addresses stay fixed")
        return None
    for pidname in EC2_PIDFILES:
        stop_pid(read_pid(os.path.join(RUN, pidname)))
    sys.path.insert(0, os.path.dirname(HERE))
    from lab.standins.cloud import MotoServer, register_lab_instances

    server = MotoServer(RUN, host=CONTROLLER_IP, port=EC2_API_PORT, record=False)
    try:
        server.start(detach=True)
    except RuntimeError as exc:
        if server.process is not None:
            stop_pid(server.process.pid)
        raise LabError(f"moto's EC2 API did not start: {exc}; see {server.log_path}") from exc
    with open(os.path.join(RUN, "ec2-api.pid"), "w") as fh:
        fh.write(str(server.process.pid))
    t0 = time.monotonic()
    fleet = register_lab_instances(server, [dict(h, tags=ec2_tags(h)) for h in aws], str(PRIVATE_NET),
                                   spec["elastic_ips"])
    for public in fleet["elastic_ips"]:
        sh("ip", "addr", "replace", f"{public}/32", "dev", EDGE_OUT, netns=EDGE_NS)
    regions = sorted({h["region"] for h in aws} | {e["region"] for e in spec["elastic_ips"]})
    owners = {e["host"] for e in spec["elastic_ips"]}
    cmd = [sys.executable, os.path.join(HERE, "eip_nat.py"), "--endpoint", server.url, "--netns", EDGE_NS,
           "--edge-out", EDGE_OUT]
    cmd += [arg for region in regions for arg in ("--region", region)]
    cmd += [arg for h in aws if h["public_ipv4"] or h["name"] in owners
            for arg in ("--instance-address", h["private_ipv4"])]
    sh(*cmd, "--once", capture=True, timeout=60)
    with open(os.path.join(RUN, "eip-nat.pid"), "w") as fh:
        fh.write(str(spawn(cmd, os.path.join(RUN, "eip-nat.log"))))
    log(f"EC2 API at {server.url}: {len(fleet['instances'])} instances, {len(fleet['elastic_ips'])} Elastic IPs "
        f"in {time.monotonic() - t0:.1f} s")
    return dict(fleet, endpoint_url=server.url, regions=regions)


def ec2_api_running(_spec=None):
    if not (load_state() or {}).get("ec2"):
        return True
    return all(pid_alive(read_pid(os.path.join(RUN, pidname))) for pidname in EC2_PIDFILES)


def ec2_api_status(state):
    ec2 = state.get("ec2")
    if not ec2:
        return None
    return dict(ec2, running={p[:-4]: pid_alive(read_pid(os.path.join(RUN, p))) for p in EC2_PIDFILES})


def wait_tcp(addr, port, what, logfile, netns=None, timeout=15.0):
    probe = f"import socket; socket.create_connection(('{addr}', {port}), 1).close()"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sh(sys.executable, "-c", probe, check=False, capture=True, netns=netns).returncode == 0:
            return
        time.sleep(0.2)
    tail = ""
    with contextlib.suppress(OSError), open(logfile) as fh:
        tail = fh.read()[-2000:]
    raise LabError(f"{what} did not listen on {addr}:{port} within {timeout:.0f} s; its log:\n{tail}")


# --------------------------------------------------------------------------------------------
# Hosts


def host_ns(name):
    return f"itsph-{name}"


def host_paths(name):
    base = os.path.join(HOSTS_DIR, name)
    return base, os.path.join(base, "upper"), os.path.join(base, "work"), os.path.join(base, "root")


def nspawn_leader(nspawn_pid):
    """The container's PID 1, as seen from here: the child of the nspawn process that lives in a PID
    namespace of its own. For the first ~50 ms nspawn's only child is its setup process (our PID
    namespace), which then exits; taken for the leader, it made a power-on wait for a dead process
    until its bound (measured: that child for 18 ms, 37 ms after the start)."""
    try:
        with open(f"/proc/{nspawn_pid}/task/{nspawn_pid}/children") as fh:
            kids = fh.read().split()
        ours = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    for kid in kids:
        with contextlib.suppress(OSError, ValueError):
            if os.readlink(f"/proc/{kid}/ns/pid") != ours:
                return int(kid)
    return None


def up_host(h, pubkey):
    name = h["name"]
    ns = host_ns(name)
    veth = f"vh-{name}"
    if not netns_exists(ns):
        sh("ip", "netns", "add", ns)
    if not link_exists(veth):
        sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        sh("ip", "link", "set", "eth0", "address", host_mac(h["private_ipv4"]), netns=ns)
        sh("ip", "link", "set", veth, "master", BRIDGE, "up")
        sh("ip", "addr", "add", f"{h['private_ipv4']}/24", "dev", "eth0", netns=ns)
        sh("ip", "link", "set", "eth0", "up", netns=ns)
        sh("ip", "link", "set", "lo", "up", netns=ns)
        sh("ip", "route", "add", "default", "via", EDGE_PRIV_IP, netns=ns)
    base, upper, work, root = host_paths(name)
    pidfile = os.path.join(RUN, f"host-{name}.pid")
    if pid_alive(read_pid(pidfile)):
        return read_pid(pidfile)
    for d in (upper, work, root):
        os.makedirs(d, exist_ok=True)
    if not os.path.ismount(root):
        sh("mount", "-t", "overlay", "overlay", "-o",
           f"lowerdir={TEMPLATE},upperdir={upper},workdir={work}", root)
    with open(os.path.join(root, "etc/hostname"), "w") as fh:
        fh.write(name + "\n")
    with open(os.path.join(root, "etc/hosts"), "w") as fh:
        fh.write(f"127.0.0.1 localhost\n{h['private_ipv4']} {name}\n")
    # apt-cacher-ng can leave a request hanging when several hosts ask for the same index at once:
    # give up on a silent connection and retry rather than wait forever.
    with open(os.path.join(root, "etc/apt/apt.conf.d/02itsp-lab-retries"), "w") as fh:
        fh.write('Acquire::http::Timeout "20";\nAcquire::Retries "3";\n')
    os.makedirs(os.path.join(root, "root/.ssh"), mode=0o700, exist_ok=True)
    with open(os.path.join(root, "root/.ssh/authorized_keys"), "w") as fh:
        fh.write(pubkey)
    os.chmod(os.path.join(root, "root/.ssh/authorized_keys"), 0o600)
    # CAP_NET_ADMIN: a real server may manage its own firewall; here it reaches only the host's netns.
    # /proc/sys/net writable (it is the host's own network namespace): a server sets its own
    # network sysctls (net.ipv4.ip_nonlocal_bind for a floating address).
    pid = spawn(["env", "SYSTEMD_NSPAWN_API_VFS_WRITABLE=network",
                 "systemd-nspawn", "--boot", "--register=no", "--keep-unit", "--resolv-conf=off",
                 "--capability=CAP_NET_ADMIN",
                 "--console=passive", "--link-journal=no", f"--network-namespace-path=/run/netns/{ns}",
                 "-D", root, "-M", name], os.path.join(RUN, f"host-{name}.log"))
    with open(pidfile, "w") as fh:
        fh.write(str(pid))
    return pid


def wait_host(name, pid, timeout=60.0):
    deadline = time.monotonic() + timeout
    leader = None
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            break
        leader = nspawn_leader(pid)
        if leader:
            res = sh("nsenter", "-t", str(leader), "-a", "systemctl", "is-system-running", "--wait",
                     check=False, capture=True, timeout=max(1, deadline - time.monotonic()))
            state = res.stdout.strip()
            if state in ("running", "degraded"):
                return leader
        time.sleep(0.3)
    tail = ""
    with contextlib.suppress(OSError), open(os.path.join(RUN, f"host-{name}.log")) as fh:
        tail = fh.read()[-2000:]
    waiting = ""
    if leader and pid_alive(pid):
        # What systemd inside is still waiting for (the console says nothing about it).
        res = sh("nsenter", "-t", str(leader), "-a", "sh", "-c",
                 "systemctl is-system-running; systemctl list-jobs --no-pager; systemctl --failed --no-pager",
                 check=False, capture=True, timeout=10)
        waiting = f"; systemd in it says:\n{res.stdout.strip()}"
    raise LabError(f"host {name} did not boot within {timeout:.0f} s{waiting}\nits console:\n{tail}")


def wait_ssh(h, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        res = sh("ssh", "-i", SSH_KEY, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                 "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=2", "-o", "LogLevel=ERROR",
                 f"root@{h['private_ipv4']}", "true", check=False, capture=True, timeout=10)
        if res.returncode == 0:
            return
        time.sleep(0.5)
    raise LabError(f"host {h['name']} booted but SSH on {h['private_ipv4']} does not answer")


def processes_rooted_in(root):
    """PIDs whose root directory is this host's container root: its processes, found without the
    nspawn that started them (an nspawn killed alone leaves its container running, unseen). The
    root is compared as a file (device and inode): a container has its own mount namespace, where
    its root's path reads "/"."""
    try:
        want = os.stat(root)
    except OSError:
        return []
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                found = os.stat(f"/proc/{entry}/root")
                if (found.st_dev, found.st_ino) == (want.st_dev, want.st_ino):
                    pids.append(int(entry))
    return pids


def down_host(name):
    stop_pid(read_pid(os.path.join(RUN, f"host-{name}.pid")), grace=15)
    base, upper, work, root = host_paths(name)
    for pid in processes_rooted_in(root):
        log(f"{name}: killing process {pid} left running in its container without its nspawn")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if os.path.ismount(root):
        sh("umount", root, check=False)
        if os.path.ismount(root):
            sh("umount", "-l", root, check=False)
    shutil.rmtree(base, ignore_errors=True)
    if link_exists(f"vh-{name}"):
        sh("ip", "link", "del", f"vh-{name}", check=False)
    if netns_exists(host_ns(name)):
        sh("ip", "netns", "del", host_ns(name), check=False)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(RUN, f"host-{name}.pid"))


# --------------------------------------------------------------------------------------------
# Commands


def cmd_up(args):
    if os.geteuid() != 0:
        raise LabError("the lab makes namespaces, bridges and containers: run it as root")
    for tool in ("debootstrap", "systemd-nspawn", "nft", "apt-cacher-ng", "ssh"):
        if not shutil.which(tool):
            raise LabError(f"{tool} is not installed: run scripts/bootstrap.sh first")
    spec = load_spec(args.spec)
    old = load_state()
    if old and old.get("spec") == spec and old.get("complete") and all_running(spec):
        log("lab already up with this spec: nothing changed")
        print(json.dumps(dict(status(), changed=False), indent=2))
        return
    if old and old.get("spec") != spec:
        log("a lab with a different spec is up: replacing it")
        cmd_down(args)
    t0 = time.monotonic()
    os.makedirs(RUN, exist_ok=True)
    save_state({"spec": spec, "complete": False})
    try:
        pubkey = ensure_ssh_key()
        ensure_template()
        up_network(spec)
        up_apt_cache()
        ec2 = up_ec2_api(spec)
        up_metadata(spec, ec2)
        up_stun()
        pids = {h["name"]: up_host(h, pubkey) for h in spec["hosts"]}
        for h in spec["hosts"]:
            wait_host(h["name"], pids[h["name"]])
        for h in spec["hosts"]:
            wait_ssh(h)
    except BaseException:
        log("lab up failed: tearing down what it made")
        cmd_down(args)
        raise
    save_state({"spec": spec, "complete": True, "ec2": ec2})
    log(f"lab up: {len(spec['hosts'])} hosts in {time.monotonic() - t0:.1f} s")
    print(json.dumps(dict(status(), changed=True), indent=2))


def all_running(spec):
    return pid_alive(read_pid(os.path.join(RUN, "metadata.pid"))) and pid_alive(
        read_pid(os.path.join(RUN, "stun.pid"))) and all(
        pid_alive(read_pid(os.path.join(RUN, f"host-{h['name']}.pid"))) for h in spec["hosts"]) and \
        ec2_api_running(spec)


def cmd_down(_args=None):
    if not os.path.isdir(RUN) and not os.path.isdir(HOSTS_DIR) and not link_exists(BRIDGE) \
            and not netns_exists(EDGE_NS) and not netns_exists(PUB_NS):
        log("lab down: nothing to do")
        return
    state = load_state() or {}
    names = [h["name"] for h in state.get("spec", {}).get("hosts", [])]
    # Hosts found on disk or by pidfile too, in case the state file was lost mid-way.
    if os.path.isdir(HOSTS_DIR):
        names += [n for n in os.listdir(HOSTS_DIR) if n not in names]
    if os.path.isdir(RUN):
        names += [f[5:-4] for f in os.listdir(RUN)
                  if f.startswith("host-") and f.endswith(".pid") and f[5:-4] not in names]
    for name in names:
        down_host(name)
    for pidname in ("metadata.pid", "stun.pid", "apt-cacher-ng.pid") + EC2_PIDFILES:
        stop_pid(read_pid(os.path.join(RUN, pidname)))
    for ns in (EDGE_NS, PUB_NS):
        if netns_exists(ns):
            sh("ip", "netns", "del", ns, check=False)
    for link in (EDGE_IN, BRIDGE):
        if link_exists(link):
            sh("ip", "link", "del", link, check=False)
    shutil.rmtree(RUN, ignore_errors=True)
    if os.path.isdir(HOSTS_DIR) and not os.listdir(HOSTS_DIR):
        os.rmdir(HOSTS_DIR)
    log("lab down: nothing of it is left (caches under " + CACHE + " are kept)")


def status():
    state = load_state()
    if not state:
        return {"up": False}
    hosts = []
    for h in state["spec"]["hosts"]:
        pid = read_pid(os.path.join(RUN, f"host-{h['name']}.pid"))
        hosts.append(dict(h, running=pid_alive(pid), mac=host_mac(h["private_ipv4"])))
    return {"up": state.get("complete", False), "controller": CONTROLLER_IP,
            "public_clients": list(PUB_CLIENT_IPS), "ssh_key": SSH_KEY,
            "metadata": pid_alive(read_pid(os.path.join(RUN, "metadata.pid"))),
            "stun": f"{PUB_CLIENT_IPS[0]}:{STUN_PORT}", "hosts": hosts, "ec2": ec2_api_status(state)}


def cmd_power_off(args):
    """Pull the plug: SIGKILL the host's nspawn (no shutdown, no goodbye on the network) and take
    its link down, as a dead server's NIC goes; its netns would otherwise still answer ARP for
    addresses it held (a floating address) as if the host were alive."""
    pidfile = os.path.join(RUN, f"host-{args.host}.pid")
    pid = read_pid(pidfile)
    if not pid_alive(pid):
        raise LabError(f"host {args.host} is not running")
    sh("ip", "link", "set", f"vh-{args.host}", "down")
    # SIGKILL to the container's PID 1 ends every process in it at once (killing only nspawn
    # would leave them running, unseen, in the host's network namespace).
    leader = nspawn_leader(pid)
    for victim in (leader, pid):
        with contextlib.suppress(ProcessLookupError, TypeError):
            os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    log(f"{args.host} powered off")


def cmd_power_on(args):
    """Boot a powered-off host again on its own disk (overlay upper), as a server coming back."""
    state = load_state() or {}
    hosts = {h["name"]: h for h in state.get("spec", {}).get("hosts", [])}
    if args.host not in hosts:
        raise LabError(f"host {args.host} is not part of the lab")
    h = hosts[args.host]
    # A server boots with its configured address only: whatever it held when it died (a
    # floating address) is gone, as a reboot would have it.
    ns = host_ns(h["name"])
    sh("ip", "-4", "addr", "flush", "dev", "eth0", netns=ns)
    sh("ip", "addr", "add", f"{h['private_ipv4']}/24", "dev", "eth0", netns=ns)
    sh("ip", "route", "replace", "default", "via", EDGE_PRIV_IP, netns=ns)
    pid = up_host(h, ensure_ssh_key())
    sh("ip", "link", "set", f"vh-{args.host}", "up")
    wait_host(h["name"], pid)
    wait_ssh(h)
    log(f"{args.host} powered on")


def cmd_status(_args):
    print(json.dumps(status(), indent=2))


def cmd_pub(args):
    if not netns_exists(PUB_NS):
        raise LabError("the lab is not up")
    os.execvp("ip", ["ip", "netns", "exec", PUB_NS] + args.cmd)


def cmd_exec(args):
    pid = read_pid(os.path.join(RUN, f"host-{args.host}.pid"))
    leader = nspawn_leader(pid) if pid_alive(pid) else None
    if not leader:
        raise LabError(f"host {args.host} is not running")
    os.execvp("nsenter", ["nsenter", "-t", str(leader), "-a"] + args.cmd)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up")
    up.add_argument("--spec", required=True, help="JSON or YAML: {hosts: [{name, private_ipv4, "
                    "public_ipv4, cloud, groups, ec2_roles}]}")
    up.set_defaults(func=cmd_up)
    sub.add_parser("down").set_defaults(func=cmd_down)
    sub.add_parser("status").set_defaults(func=cmd_status)
    for verb, func in (("power-off", cmd_power_off), ("power-on", cmd_power_on)):
        power = sub.add_parser(verb)
        power.add_argument("host")
        power.set_defaults(func=func)
    pub = sub.add_parser("pub")
    pub.add_argument("cmd", nargs=argparse.REMAINDER)
    pub.set_defaults(func=cmd_pub)
    ex = sub.add_parser("exec")
    ex.add_argument("host")
    ex.add_argument("cmd", nargs=argparse.REMAINDER)
    ex.set_defaults(func=cmd_exec)
    args = p.parse_args(argv)
    if getattr(args, "cmd", None) and args.cmd[0] == "--":
        args.cmd = args.cmd[1:]
    try:
        args.func(args)
    except LabError as exc:
        print(f"lab: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
