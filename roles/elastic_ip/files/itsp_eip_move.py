"""Move an Elastic IP to this instance: keepalived's notify_master action for an AWS pair.

    itsp-eip-move [--config /etc/itsp/eip-move.conf]

Asks the instance metadata service (IMDSv2) which instance this is, then calls EC2
AssociateAddress(AllocationId, InstanceId or NetworkInterfaceId [+ PrivateIpAddress],
AllowReassociation=True), so the address leaves the old active wherever it was. botocore's
standard retry mode retries throttling, 5xx answers and connection errors up to max_attempts
(the first try included). One lock file keeps two runs (a flapping VRRP state) from racing.

Each outcome is one line to syslog (ident itsp-eip-move, so `journalctl -t itsp-eip-move` shows it)
and to stderr. Exit status:
    0  moved (or already here)
    2  the config is missing or wrong (the message names the setting)
    3  the metadata service did not say which instance this is
    4  not allowed: credentials refused or the role lacks ec2:AssociateAddress (the message says which)
    5  the EC2 API failed or was unreachable after every attempt

Config (INI, written by the itsp.cluster.elastic_ip role), section [elastic_ip]:
    allocation_id       eipalloc-...                        required
    region              eu-west-1                           required
    endpoint_url        empty: AWS; the lab: moto's URL
    network_interface_id  empty: the instance (its primary ENI); set for an address on a given ENI
    private_ip_address  empty: the ENI's primary address
    max_attempts        5         connect_timeout 2    read_timeout 5
    metadata_url        http://169.254.169.254
    access_key_id / secret_access_key   empty: boto3's own chain (the instance profile)
Needs only Python's standard library and boto3 (Debian: python3-boto3).
"""

import argparse
import configparser
import fcntl
import logging
import logging.handlers
import os
import sys
import time
import urllib.error
import urllib.request

IDENT = "itsp-eip-move"
DEFAULT_CONFIG = "/etc/itsp/eip-move.conf"
SECTION = "elastic_ip"
DENIED_CODES = {
    "UnauthorizedOperation": "the credentials' IAM policy does not allow ec2:AssociateAddress on this "
                             "Elastic IP and instance",
    "AccessDenied": "the credentials' IAM policy does not allow ec2:AssociateAddress on this Elastic IP "
                    "and instance",
    "AuthFailure": "AWS refused the credentials: check the instance profile (or access_key_id)",
    "InvalidClientTokenId": "AWS does not know the access key: check the instance profile (or access_key_id)",
    "SignatureDoesNotMatch": "the secret key does not match the access key",
    "ExpiredToken": "the credentials expired: check the instance profile",
}
EXIT_CONFIG, EXIT_METADATA, EXIT_DENIED, EXIT_API = 2, 3, 4, 5


class Failure(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def logger():
    log = logging.getLogger(IDENT)
    log.setLevel(logging.INFO)
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(logging.Formatter(f"{IDENT}: %(message)s"))
    log.addHandler(stderr)
    if os.path.exists("/dev/log"):
        syslog = logging.handlers.SysLogHandler(address="/dev/log",
                                                facility=logging.handlers.SysLogHandler.LOG_DAEMON)
        syslog.setFormatter(logging.Formatter(f"{IDENT}[{os.getpid()}]: %(message)s"))
        log.addHandler(syslog)
    return log


def read_config(path):
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except (OSError, configparser.Error) as error:
        raise Failure(EXIT_CONFIG, f"cannot read config {path}: {error}") from error
    if not parser.has_section(SECTION):
        raise Failure(EXIT_CONFIG, f"config {path} has no [{SECTION}] section")
    settings = dict(parser.items(SECTION))
    for key in ("allocation_id", "region"):
        if not settings.get(key):
            raise Failure(EXIT_CONFIG, f"config {path}: [{SECTION}] {key} is not set")
    if not settings["allocation_id"].startswith("eipalloc-"):
        raise Failure(EXIT_CONFIG, f"config {path}: allocation_id {settings['allocation_id']!r} is not an "
                                   "Elastic IP allocation id (eipalloc-...)")
    try:
        for key, default in (("max_attempts", 5), ("connect_timeout", 2), ("read_timeout", 5)):
            settings[key] = int(settings.get(key) or default)
            if settings[key] < 1:
                raise ValueError(f"{key} must be at least 1")
    except ValueError as error:
        raise Failure(EXIT_CONFIG, f"config {path}: {error}") from error
    settings["metadata_url"] = settings.get("metadata_url") or "http://169.254.169.254"
    return settings


def instance_id(metadata_url, attempts=3, timeout=2):
    """IMDSv2: a session token first (PUT), then the instance id with it."""
    base = metadata_url.rstrip("/")
    last = None
    for attempt in range(attempts):
        try:
            put = urllib.request.Request(base + "/latest/api/token", method="PUT",  # noqa: S310 - link-local URL from config
                                         headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
            with urllib.request.urlopen(put, timeout=timeout) as answer:  # noqa: S310
                token = answer.read().decode()
            get = urllib.request.Request(base + "/latest/meta-data/instance-id",  # noqa: S310
                                         headers={"X-aws-ec2-metadata-token": token})
            with urllib.request.urlopen(get, timeout=timeout) as answer:  # noqa: S310
                value = answer.read().decode().strip()
            if value.startswith("i-"):
                return value
            last = f"instance-id {value[:40]!r} is not an EC2 instance id"
        except (OSError, urllib.error.URLError) as error:
            last = str(error)
        time.sleep(0.2 * (attempt + 1))
    raise Failure(EXIT_METADATA, f"the metadata service {base} did not say which instance this is: {last}")


def associate(settings, instance):
    try:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError as error:
        raise Failure(EXIT_CONFIG, f"boto3 is not installed (Debian: python3-boto3): {error}") from error

    # total_max_attempts counts the first try too (botocore's max_attempts would not).
    config = Config(retries={"mode": "standard", "total_max_attempts": settings["max_attempts"]},
                    connect_timeout=settings["connect_timeout"], read_timeout=settings["read_timeout"],
                    user_agent_extra=IDENT)
    credentials = {}
    if settings.get("access_key_id"):
        credentials = {"aws_access_key_id": settings["access_key_id"],
                       "aws_secret_access_key": settings.get("secret_access_key", "")}
    client = boto3.client("ec2", region_name=settings["region"], endpoint_url=settings.get("endpoint_url") or None,
                          config=config, **credentials)
    attempts = []
    client.meta.events.register("before-send.ec2.AssociateAddress", lambda **_: attempts.append(1))
    request = {"AllocationId": settings["allocation_id"], "AllowReassociation": True}
    target = settings.get("network_interface_id")
    if target:
        request["NetworkInterfaceId"] = target
        if settings.get("private_ip_address"):
            request["PrivateIpAddress"] = settings["private_ip_address"]
    else:
        request["InstanceId"] = instance
        target = instance
    what = f"Elastic IP {settings['allocation_id']} to {target}"
    try:
        answer = client.associate_address(**request)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "Unknown")
        message = error.response.get("Error", {}).get("Message", "")
        if code in DENIED_CODES:
            raise Failure(EXIT_DENIED, f"not allowed to move {what}: {code}: {message}; "
                                       f"{DENIED_CODES[code]} (needs ec2:AssociateAddress)") from error
        raise Failure(EXIT_API, f"moving {what} failed after {len(attempts)} attempt(s): {code}: {message}") \
            from error
    except BotoCoreError as error:
        # NoCredentialsError: nothing to sign with (no instance profile, no access key).
        status = EXIT_DENIED if type(error).__name__ == "NoCredentialsError" else EXIT_API
        raise Failure(status, f"moving {what} failed after {len(attempts)} attempt(s): "
                              f"{type(error).__name__}: {error}") from error
    return what, answer.get("AssociationId"), len(attempts)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=DEFAULT_CONFIG)
    # keepalived's notify passes "GROUP|INSTANCE NAME STATE PRIORITY"; notify_master needs none of it.
    parser.add_argument("keepalived", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    log = logger()
    started = time.monotonic()
    try:
        settings = read_config(args.config)
        lock_path = settings.get("lock_file") or "/run/itsp-eip-move.lock"
        with open(lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            what, association, attempts = associate(settings, instance_id(settings["metadata_url"]))
    except Failure as failure:
        log.error(failure)
        return failure.status
    log.info(f"moved {what}: association {association}, {attempts} attempt(s), "
             f"{time.monotonic() - started:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
