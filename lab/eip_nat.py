#!/usr/bin/env python3
"""The lab's 1-to-1 NAT for Elastic IPs follows their associations, as a cloud's network does.

Polls DescribeAddresses on the lab's EC2 API (moto) every --interval seconds and keeps the edge
namespace's nft table `itsp_eip` equal to what it says: for each Elastic IP associated with an
instance or network interface, DNAT public -> that private address and SNAT back; an Elastic IP
associated with nothing takes no traffic. Its chains run just before the static table itsp_lab's
(priority dstnat - 1, srcnat - 1) and the kernel keeps the first NAT a flow gets, so for an
Elastic IP this table decides, whatever itsp_lab says about the same address. An instance of the
lab whose Elastic IP went away reaches no internet (as on EC2 with no public address). When an
address moves, the edge's conntrack entries for it are deleted, so an ongoing UDP flow (SIP from
the same client port) follows the move at once instead of keeping its old translation until it
times out.

    eip_nat.py --endpoint URL --region R [--region R2] --netns NS --edge-out IF
               --instance-address ADDR [...] [--interval 0.5] [--once]

Each change is logged with a wall-clock timestamp ("applied ... at T"), which the benches read.
SIGTERM stops it; the last applied rules stay (a stopped API does not cut the lab off).
"""

import argparse
import signal
import subprocess
import sys
import time

import boto3
from botocore.config import Config

TABLE = "itsp_eip"
FAKE_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def associations(clients):
    """{public address: private address or None}, from one DescribeAddresses per region."""
    mapping = {}
    for ec2 in clients:
        for address in ec2.describe_addresses()["Addresses"]:
            associated = address.get("AssociationId") and address.get("PrivateIpAddress")
            mapping[address["PublicIp"]] = address["PrivateIpAddress"] if associated else None
    return mapping


def ruleset(mapping, instance_addresses, edge_out):
    """The nft table for this mapping. Several EIPs on one private address: SNAT to the lowest."""
    dnat, snat, unassociated, snat_done = [], [], [], set()
    for public in sorted(mapping, key=lambda a: tuple(int(o) for o in a.split("."))):
        private = mapping[public]
        if private is None:
            unassociated.append(public)
            continue
        dnat.append(f"    ip daddr {public} dnat to {private}")
        if private not in snat_done:
            snat_done.add(private)
            snat.append(f'    ip saddr {private} oifname "{edge_out}" snat to {public}')
    unreachable = sorted(set(instance_addresses) - snat_done)
    drop_in = f"    ip daddr {{ {', '.join(unassociated)} }} drop" if unassociated else ""
    # Only what the host starts: replies of flows NATed to it by other rules (a VIP) still pass.
    drop_out = (f'    ip saddr {{ {", ".join(unreachable)} }} oifname "{edge_out}" ct direction original drop'
                if unreachable else "")
    newline = "\n"
    return f"""table ip {TABLE}
delete table ip {TABLE}
table ip {TABLE} {{
  chain prerouting {{
    type nat hook prerouting priority dstnat - 1; policy accept;
{newline.join(dnat)}
  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat - 1; policy accept;
{newline.join(snat)}
  }}
  chain unassociated {{
    type filter hook prerouting priority dstnat - 10; policy accept;
{drop_in}
  }}
  chain forward {{
    type filter hook forward priority filter; policy accept;
{drop_out}
  }}
}}
"""


def apply(netns, rules, moved):
    subprocess.run(["ip", "netns", "exec", netns, "nft", "-f", "-"], input=rules, text=True, check=True,
                   timeout=10)
    for public in moved:
        # Exit status 1 with "0 flow entries" when there was none: not an error.
        subprocess.run(["ip", "netns", "exec", netns, "conntrack", "-D", "-d", public], check=False,
                       capture_output=True, timeout=10)
        subprocess.run(["ip", "netns", "exec", netns, "conntrack", "-D", "-q", public], check=False,
                       capture_output=True, timeout=10)


def log(message):
    print(f"eip_nat: {message}", file=sys.stderr, flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--region", action="append", required=True)
    parser.add_argument("--netns", required=True)
    parser.add_argument("--edge-out", required=True)
    parser.add_argument("--instance-address", action="append", default=[])
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--once", action="store_true", help="apply once and exit (non-zero if the API fails)")
    args = parser.parse_args(argv)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    config = Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=1, read_timeout=2)
    clients = [boto3.client("ec2", region_name=region, endpoint_url=args.endpoint, config=config,
                            **FAKE_CREDENTIALS) for region in args.region]
    applied, failing = None, False
    while not stop:
        started = time.monotonic()
        try:
            mapping = associations(clients)
        except Exception as error:  # noqa: BLE001 - any API failure: keep the last rules, say so once
            if args.once:
                log(f"DescribeAddresses failed: {error}")
                return 1
            if not failing:
                log(f"DescribeAddresses failed, keeping the last rules: {error}")
            failing = True
        else:
            if failing:
                log("DescribeAddresses answers again")
            failing = False
            if mapping != applied:
                moved = [public for public, private in mapping.items()
                         if applied is not None and applied.get(public) != private]
                apply(args.netns, ruleset(mapping, args.instance_address, args.edge_out), moved)
                log(f"applied {sorted((k, v) for k, v in mapping.items())} at {time.time():.3f}")
                applied = mapping
        if args.once:
            return 0
        time.sleep(max(0.0, args.interval - (time.monotonic() - started)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
