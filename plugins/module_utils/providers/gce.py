# Copyright: itsp.cluster engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Google Compute Engine: the metadata server (computeMetadata/v1, header Metadata-Flavor: Google)."""

import json
import re

from ansible_collections.itsp.cluster.plugins.module_utils.providers.base import (
    Detected,
    MetadataHttp,
    Nic,
    NotHere,
    ProviderError,
)

BASE = "/computeMetadata/v1/instance/"
HEADERS = {"Metadata-Flavor": "Google"}
ZONE_RE = re.compile(r"^projects/[^/\s]+/zones/([a-z0-9-]+)$")
MACHINE_TYPE_RE = re.compile(r"^projects/[^/\s]+/machineTypes/([A-Za-z0-9_.-]+)$")


class GceProvider:
    name = "gce"
    label = "gce metadata"

    def __init__(self, endpoint, timeout, sleep=None):
        kwargs = {"sleep": sleep} if sleep else {}
        self.http = MetadataHttp(endpoint, timeout, self.label, **kwargs)
        self.source = f"{self.label} {self.http.endpoint}"

    def detect(self):
        instance_id = self.http.token(*self._get("id", probe=True), "an instance id")
        zone = self._match(ZONE_RE, "zone", "projects/NUMBER/zones/ZONE")
        machine_type = self._match(MACHINE_TYPE_RE, "machine-type", "projects/NUMBER/machineTypes/TYPE")
        reply, path = self._get("network-interfaces/?recursive=true")
        try:
            interfaces = json.loads(self.http.text(reply, path, "a JSON list of network interfaces"))
            if not isinstance(interfaces, list) or not interfaces:
                raise ValueError("not a non-empty list")
            nics = [self._nic(entry, path, reply.body) for entry in interfaces]
        except (ValueError, TypeError, AttributeError, KeyError):
            raise self.http.garbage("a JSON list of network interfaces", path, reply.body) from None
        return Detected(
            provider=self.name,
            source=self.source,
            interfaces=nics,
            region=zone.rsplit("-", 1)[0],
            zone=zone,
            instance_id=instance_id,
            instance_type=machine_type,
        )

    def _nic(self, entry, path, body):
        public = None
        for config in entry.get("accessConfigs") or []:
            if config.get("type") == "ONE_TO_ONE_NAT" and config.get("externalIp"):
                public = self.http.ipv4(config["externalIp"], path, body)
                break
        return Nic(
            mac=self.http.mac(entry["mac"], path, body),
            private_ipv4=self.http.ipv4(entry["ip"], path, body),
            public_ipv4=public,
            ipv6=[self.http.ipv6(value, path, body) for value in entry.get("ipv6s") or []],
        )

    def _match(self, pattern, key, shape):
        reply, path = self._get(key)
        match = pattern.match(self.http.text(reply, path, shape))
        if not match:
            raise self.http.garbage(shape, path, reply.body)
        return match.group(1)

    def _get(self, key, probe=False):
        path = BASE + key
        reply = self.http.request("GET", path, HEADERS)
        if probe and reply.status in (400, 404, 405):
            raise NotHere(f"{self.http.where}: GET {path} answered {reply.status}")
        if reply.status == 403:
            raise self.http.unexpected(
                reply, "GET", path,
                "the metadata server refuses requests without the header Metadata-Flavor: Google and "
                "requests that went through a proxy (X-Forwarded-For); check for an HTTP proxy "
                f"between this host and {self.http.endpoint}")
        if reply.status != 200:
            raise self.http.unexpected(reply, "GET", path)
        if reply.header("Metadata-Flavor") != "Google" and probe:
            # Validate the body first so junk is reported as junk, then insist on the header.
            self.http.token(reply, path, "an instance id")
            raise ProviderError(
                f"{self.http.where}: GET {path} answered without the header Metadata-Flavor: Google that "
                f"the GCE metadata server always sends; something else answers at {self.http.endpoint}")
        return reply, path
