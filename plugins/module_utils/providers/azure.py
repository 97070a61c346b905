# Copyright: itsp.cluster engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Microsoft Azure: the Instance Metadata Service (header Metadata: true, api-version required).

With a Standard SKU public IP behind a load balancer the instance document has an empty
publicIpAddress; /metadata/loadbalancer then carries the frontend address.
"""

import contextlib
import json

from ansible_collections.itsp.cluster.plugins.module_utils.providers.base import (
    Detected,
    MetadataHttp,
    Nic,
    NotHere,
)

API_VERSION = "2021-02-01"
HEADERS = {"Metadata": "true"}
INSTANCE = "/metadata/instance"
LOADBALANCER = "/metadata/loadbalancer"


class AzureProvider:
    name = "azure"
    label = "azure imds"

    def __init__(self, endpoint, timeout, sleep=None):
        kwargs = {"sleep": sleep} if sleep else {}
        self.http = MetadataHttp(endpoint, timeout, self.label, **kwargs)
        self.source = f"{self.label} {self.http.endpoint}"

    def detect(self):
        document, path, body = self._get(INSTANCE, probe=True)
        try:
            compute = document["compute"]
            nics = [self._nic(entry, path, body) for entry in document["network"]["interface"]]
            if not nics:
                raise ValueError("no interfaces")
            fields = {key: compute.get(key) for key in ("location", "zone", "vmId", "vmSize")}
            if not all(isinstance(value, str) for value in fields.values()):
                raise ValueError("compute fields are not strings")
        except (ValueError, TypeError, AttributeError, KeyError):
            raise self.http.garbage("the instance document (compute, network.interface)",
                                    path, body) from None
        source = self.source
        if not any(nic.public_ipv4 for nic in nics) and self._public_from_loadbalancer(nics):
            source += " (public address from /metadata/loadbalancer)"
        return Detected(
            provider=self.name,
            source=source,
            interfaces=nics,
            region=fields["location"] or None,
            zone=fields["zone"] or None,
            instance_id=fields["vmId"] or None,
            instance_type=fields["vmSize"] or None,
        )

    def _nic(self, entry, path, body):
        addresses = entry["ipv4"]["ipAddress"]
        if not addresses:
            raise ValueError("interface without IPv4")
        public = addresses[0].get("publicIpAddress") or None
        ipv6 = [item["privateIpAddress"] for item in (entry.get("ipv6") or {}).get("ipAddress") or []]
        return Nic(
            mac=self.http.mac(entry["macAddress"], path, body),
            private_ipv4=self.http.ipv4(addresses[0]["privateIpAddress"], path, body),
            public_ipv4=self.http.ipv4(public, path, body) if public else None,
            ipv6=[self.http.ipv6(value, path, body) for value in ipv6],
        )

    def _public_from_loadbalancer(self, nics):
        """Standard SKU: the frontend address of the load balancer rule for our private address."""
        try:
            document, path, body = self._get(LOADBALANCER)
        except NotHere:
            return False
        try:
            entries = document["loadbalancer"].get("publicIpAddresses") or []
            pairs = [(item["privateIpAddress"], item["frontendIpAddress"]) for item in entries]
        except (TypeError, AttributeError, KeyError):
            raise self.http.garbage("the load balancer document", path, body) from None
        found = False
        for private, public in pairs:
            for nic in nics:
                if nic.private_ipv4 == private and not nic.public_ipv4:
                    nic.public_ipv4 = self.http.ipv4(public, path, body)
                    found = True
        return found

    def _get(self, resource, probe=False):
        path = f"{resource}?api-version={API_VERSION}"
        reply = self.http.request("GET", path, HEADERS)
        if reply.status in (404, 405) and (probe or resource == LOADBALANCER):
            raise NotHere(f"{self.http.where}: GET {path} answered {reply.status}")
        if reply.status != 200:
            error = ""
            with contextlib.suppress(ValueError, UnicodeDecodeError, AttributeError):
                error = json.loads(reply.body.decode("utf-8")).get("error", "")
            hint = (f"IMDS says: {error}; " if error else "") + (
                "IMDS refuses requests without the header Metadata: true or with X-Forwarded-For "
                f"(a proxy between this host and {self.http.endpoint}?)")
            raise self.http.unexpected(reply, "GET", path, hint)
        try:
            return json.loads(reply.body.decode("utf-8")), path, reply.body
        except (ValueError, UnicodeDecodeError):
            raise self.http.garbage("JSON", path, reply.body) from None
