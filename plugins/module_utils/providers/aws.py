# Copyright: itsp.cluster engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""AWS EC2: the instance metadata service, IMDSv2 only (token first, then GETs with the token)."""

from ansible_collections.itsp.cluster.plugins.module_utils.providers.base import (
    Detected,
    MetadataHttp,
    Nic,
    NoReply,
    NotHere,
    ProviderError,
    Unreachable,
)

TOKEN_PATH = "/latest/api/token"  # noqa: S105 - a URL path, not a secret
META = "/latest/meta-data/"
# The token is used for a dozen requests within a second; a short life is plenty.
TOKEN_TTL = 60
HOP_LIMIT_HINT = (
    "the token reply is sent with the instance's HttpPutResponseHopLimit as IP TTL and is dropped "
    "when it has to cross more hops (a container, a proxy); raise it with "
    "`aws ec2 modify-instance-metadata-options --instance-id ID --http-put-response-hop-limit 2` "
    "or run this on the instance itself"
)


class AwsProvider:
    name = "aws"
    label = "aws imdsv2"

    def __init__(self, endpoint, timeout, sleep=None):
        kwargs = {"sleep": sleep} if sleep else {}
        self.http = MetadataHttp(endpoint, timeout, self.label, **kwargs)
        self.source = f"{self.label} {self.http.endpoint}"

    def detect(self):
        token = self._token()
        instance_id = self.http.token(*self._get(token, "instance-id", required=True), "an instance id")
        instance_type = self.http.token(*self._get(token, "instance-type", required=True), "an instance type")
        zone = self.http.token(*self._get(token, "placement/availability-zone", required=True), "a zone")
        region_reply = self._get(token, "placement/region")
        region = self.http.token(*region_reply, "a region") if region_reply else zone.rstrip("abcdefghij")
        primary_mac = self.http.mac(self._text(token, "mac", True, "a MAC address"), META + "mac")

        listing = self._text(token, "network/interfaces/macs/", True, "a list of MAC addresses")
        nics = []
        for entry in listing.split():
            mac = self.http.mac(entry.rstrip("/"), META + "network/interfaces/macs/", listing)
            nics.append(self._nic(token, mac))
        if not nics:
            raise self.http.garbage("a list of MAC addresses", META + "network/interfaces/macs/", listing)
        nics.sort(key=lambda pair: (pair[1].mac != primary_mac, pair[0]))
        return Detected(
            provider=self.name,
            source=self.source,
            interfaces=[nic for _, nic in nics],
            region=region,
            zone=zone,
            instance_id=instance_id,
            instance_type=instance_type,
        )

    def _nic(self, token, mac):
        base = f"network/interfaces/macs/{mac}/"
        device = self._text(token, base + "device-number", True, "a device number")
        if not device.isdigit():
            raise self.http.garbage("a device number", META + base + "device-number", device)
        privates = self._text(token, base + "local-ipv4s", True, "an IPv4 address").split()
        publics = (self._text(token, base + "public-ipv4s", what="an IPv4 address") or "").split()
        ipv6 = (self._text(token, base + "ipv6s", what="IPv6 addresses") or "").split()
        if not privates:
            raise self.http.garbage("an IPv4 address", META + base + "local-ipv4s", "")
        return int(device), Nic(
            mac=mac,
            private_ipv4=self.http.ipv4(privates[0], META + base + "local-ipv4s"),
            public_ipv4=self.http.ipv4(publics[0], META + base + "public-ipv4s") if publics else None,
            ipv6=[self.http.ipv6(value, META + base + "ipv6s") for value in ipv6],
        )

    def _token(self):
        headers = {"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL)}
        try:
            reply = self.http.request("PUT", TOKEN_PATH, headers)
        except NoReply as silent:
            self._probe_after_silent_put(silent)
            raise
        # 400 cannot come from IMDS for a PUT with a valid TTL header; Azure answers 400 to
        # anything without its Metadata header, GCE 404/405 to unknown paths.
        if reply.status in (400, 404, 405):
            raise NotHere(f"{self.http.where}: PUT {TOKEN_PATH} answered {reply.status}")
        if reply.status == 401:
            raise self.http.unexpected(reply, "PUT", TOKEN_PATH,
                                       "IMDS refused to issue a token; " + HOP_LIMIT_HINT)
        if reply.status == 403:
            raise self.http.unexpected(
                reply, "PUT", TOKEN_PATH,
                "the instance metadata service is turned off for this instance (HttpEndpoint=disabled) "
                "or the request went through a proxy (IMDS refuses X-Forwarded-For); enable it with `aws ec2 "
                "modify-instance-metadata-options --instance-id ID --http-endpoint enabled`",
            )
        if reply.status != 200:
            raise self.http.unexpected(reply, "PUT", TOKEN_PATH)
        return self.http.token(reply, TOKEN_PATH, "an IMDSv2 token")

    def _probe_after_silent_put(self, silent):
        """The token PUT got no reply. If a plain GET does get one, IMDS is there and only the
        token reply is lost on the way: the hop limit."""
        try:
            probe = self.http.request("GET", META)
        except (NoReply, Unreachable):
            return
        if probe.status in (200, 401):
            raise ProviderError(
                f"{self.http.where}: PUT {TOKEN_PATH} got no reply within {self.http.timeout:g} s although "
                f"GET {META} answers (HTTP {probe.status}); {HOP_LIMIT_HINT}"
            ) from silent

    def _get(self, token, key, required=False):
        """GET META+key with the token. Returns (reply, path), or None for a 404 unless required."""
        path = META + key
        reply = self.http.request("GET", path, {"X-aws-ec2-metadata-token": token})
        if reply.status == 200:
            return reply, path
        if reply.status == 404 and not required:
            return None
        if reply.status == 401:
            raise self.http.unexpected(
                reply, "GET", path,
                "IMDS issued a token and then rejected it; check for a proxy or NAT in front of "
                f"{self.http.endpoint} that mixes up instances",
            )
        raise self.http.unexpected(reply, "GET", path)

    def _text(self, token, key, required=False, what="text"):
        got = self._get(token, key, required)
        return self.http.text(*got, what) if got else None
