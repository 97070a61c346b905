# Copyright: itsp.cluster engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where does this host live, and which addresses does SIP need to know about?

CloudFacts asks the providers in order (aws, gce, azure share one metadata endpoint; metal asks
the host itself), then decides NAT on the host: a public address bound locally means no NAT, one
that is not bound means 1-to-1 NAT in front of the host. Static addresses override what was found.

The result is the itsp_cloud fact, a contract with the roles:
provider, region, zone, instance_id, instance_type, source, interfaces, private_ipv4, public_ipv4,
nat, warnings.
"""

import ipaddress
import time

from ansible_collections.itsp.cluster.plugins.module_utils.addresses import is_public_ipv4, parse_networks
from ansible_collections.itsp.cluster.plugins.module_utils.errors import ItspError
from ansible_collections.itsp.cluster.plugins.module_utils.providers.aws import AwsProvider
from ansible_collections.itsp.cluster.plugins.module_utils.providers.azure import AzureProvider
from ansible_collections.itsp.cluster.plugins.module_utils.providers.base import (
    NoReply,
    NotHere,
    ProviderError,
    Unreachable,
)
from ansible_collections.itsp.cluster.plugins.module_utils.providers.gce import GceProvider
from ansible_collections.itsp.cluster.plugins.module_utils.providers.metal import (
    LocalAddresses,
    MetalProvider,
    parse_stun_server,
    stun_public_ipv4,
)

PROVIDERS = ("aws", "gce", "azure", "metal")
HTTP_PROVIDERS = {"aws": AwsProvider, "gce": GceProvider, "azure": AzureProvider}
DEFAULT_ENDPOINT = "http://169.254.169.254"
FACT_KEYS = ("provider", "region", "zone", "instance_id", "instance_type", "source", "interfaces",
             "private_ipv4", "public_ipv4", "nat", "warnings")
WILDCARD = "0.0.0.0"  # noqa: S104 - compared against, never bound


class CloudFactsError(ItspError):
    """Detection failed; str() is the message for fail_json."""


def parse_static_ipv4(option, value):
    if value is None or value == "":
        return None
    try:
        return str(ipaddress.IPv4Address(str(value).strip()))
    except ValueError:
        raise CloudFactsError(
            f"{option} {value!r} is not an IPv4 address (expected e.g. 203.0.113.10)") from None


class CloudFacts:
    """Runs the detection. local_addresses is a callable returning LocalAddresses (called once);
    stun is a callable(server, timeout) -> public IPv4 (default: providers.metal.stun_public_ipv4),
    asked only on metal without a bound or static public address, and only with stun_server."""

    def __init__(self, local_addresses, providers=PROVIDERS, timeout=1.0, metadata_endpoint=DEFAULT_ENDPOINT,
                 private_ipv4=None, public_ipv4=None, validate=True, stun_server=None, stun=None,
                 sleep=time.sleep, public_networks=()):
        unknown = [name for name in providers if name not in PROVIDERS]
        if unknown or not providers:
            raise CloudFactsError(
                f"providers must be a non-empty list of {', '.join(PROVIDERS)}; got {list(providers)}")
        ordered = list(dict.fromkeys(providers))
        after = ordered[ordered.index("metal") + 1:] if "metal" in ordered else []
        if after:
            raise CloudFactsError(
                f"providers lists {', '.join(after)} after metal, which always answers, so "
                f"{'it' if len(after) == 1 else 'they'} would never be asked; put metal last")
        if not 0 < float(timeout) <= 60:
            raise CloudFactsError(f"timeout must be more than 0 and at most 60 seconds, got {timeout}")
        self.local_addresses = local_addresses
        self.providers = list(dict.fromkeys(providers))
        self.timeout = float(timeout)
        self.endpoint = metadata_endpoint
        self.static_private = parse_static_ipv4("private_ipv4", private_ipv4)
        self.static_public = parse_static_ipv4("public_ipv4", public_ipv4)
        self.validate = validate
        try:
            self.public_networks = parse_networks(public_networks)
        except ValueError as exc:
            raise CloudFactsError(str(exc)) from None
        if stun_server:
            try:
                parse_stun_server(stun_server)
            except ValueError as exc:
                raise CloudFactsError(str(exc)) from exc
        self.stun_server = stun_server
        self.stun = stun or stun_public_ipv4
        self.sleep = sleep
        self.warnings = []

    # -- the whole run -----------------------------------------------------------------------------
    def gather(self):
        try:
            local = self.local_addresses()
        except ProviderError as exc:
            raise CloudFactsError(str(exc)) from exc
        detected = self._detect(local)
        return self._result(detected, local)

    def _detect(self, local):
        silent = None  # why the shared endpoint is not worth asking again
        tried = []
        for name in self.providers:
            if name == "metal":
                return self._metal(local)
            if silent:
                continue
            tried.append(name)
            try:
                provider = HTTP_PROVIDERS[name](self.endpoint, self.timeout, sleep=self.sleep)
            except ValueError as exc:
                raise CloudFactsError(str(exc)) from exc
            try:
                return provider.detect()
            except NotHere:
                continue
            except Unreachable as exc:
                silent = str(exc)
            except NoReply as exc:
                silent = str(exc)
                self.warnings.append(f"{exc}; did not ask the same endpoint again")
            except ProviderError as exc:
                if not (self.static_private or self.static_public):
                    raise CloudFactsError(str(exc)) from exc
                self.warnings.append(f"{exc}. Used the static addresses given instead")
                detected = self._metal(local)
                detected.provider = name
                detected.source = f"static ({self._static_options()}; {provider.source} failed)"
                return detected
        reason = silent or "it answered 404 (no such cloud) for each"
        raise CloudFactsError(
            f"no metadata service answered at {self.endpoint} ({', '.join(tried)} tried; {reason}); "
            "on bare metal add metal to providers, in a cloud check that the host can reach "
            f"{self.endpoint} (a firewall, a network namespace, a container without the hop limit)"
        )

    def _metal(self, local):
        try:
            return MetalProvider(local, self.static_private).detect()
        except ProviderError as exc:
            raise CloudFactsError(str(exc)) from exc

    def _static_options(self):
        return " and ".join(option for option, value in (("private_ipv4", self.static_private),
                                                         ("public_ipv4", self.static_public)) if value)

    # -- from a provider's answer to the fact --------------------------------------------------------
    def _result(self, detected, local):
        nics = detected.interfaces
        primary = nics[0]
        sources = [detected.source]
        self.warnings.extend(detected.warnings)
        statics_used = detected.source.startswith("static (")

        if self.static_private and primary.private_ipv4 != self.static_private:
            if primary.private_ipv4 and not statics_used:
                self.warnings.append(
                    f"private_ipv4 {self.static_private} (option) overrides {primary.private_ipv4} "
                    f"from {detected.source}")
            primary.private_ipv4 = self.static_private
        if self.static_public and primary.public_ipv4 != self.static_public:
            if primary.public_ipv4 and not statics_used:
                self.warnings.append(
                    f"public_ipv4 {self.static_public} (option) overrides {primary.public_ipv4} "
                    f"from {detected.source}")
            primary.public_ipv4 = self.static_public
        if not statics_used and (self.static_private or self.static_public):
            sources.append(f"static {self._static_options()}")

        if detected.provider == "metal" and primary.public_ipv4 is None:
            if self.stun_server and self.stun:
                primary.public_ipv4 = self._stun()
                if primary.public_ipv4:
                    sources.append(f"stun {self.stun_server}")
            if primary.public_ipv4 is None:
                self.warnings.append(
                    "no public IPv4 on this host, so public_ipv4 is null; if the internet reaches it "
                    "through NAT, set public_ipv4 (or stun_server)")

        for nic in nics:
            link = local.link_for_mac(nic.mac) or local.link_for_address(nic.private_ipv4)
            if link:
                nic.name = link.name
                nic.mac = nic.mac or link.mac
                if not nic.ipv6:
                    nic.ipv6 = list(link.ipv6)

        if self.validate:
            self._check(primary, local, detected)

        interfaces = [{
            "name": nic.name,
            "mac": nic.mac,
            "private_ipv4": nic.private_ipv4,
            "public_ipv4": nic.public_ipv4,
            "ipv6": list(nic.ipv6),
            "nat": self._nat(nic.public_ipv4, local),
        } for nic in nics]
        facts = {
            "provider": detected.provider,
            "region": detected.region,
            "zone": detected.zone,
            "instance_id": detected.instance_id,
            "instance_type": detected.instance_type,
            "source": " + ".join(sources),
            "interfaces": interfaces,
            "private_ipv4": primary.private_ipv4,
            "public_ipv4": primary.public_ipv4,
            "nat": interfaces[0]["nat"],
            "warnings": list(self.warnings),
        }
        return facts

    @staticmethod
    def _nat(public_ipv4, local):
        if public_ipv4 is None or local.is_bound(public_ipv4):
            return "none"
        return "one_to_one"

    def _stun(self):
        try:
            return self.stun(self.stun_server, self.timeout)
        except ProviderError as exc:
            self.warnings.append(str(exc))
            return None

    def _check(self, primary, local, detected):
        held = local.describe()
        private, public = primary.private_ipv4, primary.public_ipv4
        if private == WILDCARD:
            raise CloudFactsError(
                "private_ipv4 0.0.0.0 is the wildcard, not an address of this host; Kamailio and "
                f"rtpengine need the concrete one: set private_ipv4 to one this host holds ({held})")
        if public == WILDCARD:
            raise CloudFactsError(
                "public_ipv4 0.0.0.0 is the wildcard, not an address; set public_ipv4 to the address "
                "the internet reaches this host on, or leave it unset")
        if local.is_bound(private):
            if self.static_public and not is_public_ipv4(self.static_public, self.public_networks):
                self.warnings.append(
                    f"public_ipv4 {self.static_public} is not a public address; the internet cannot "
                    "reach it unless this is deliberate (a private peering)")
            return
        if public and local.is_bound(public):
            raise CloudFactsError(
                f"private_ipv4 {private} is not bound on this host but public_ipv4 {public} is: "
                f"the two look swapped; set private_ipv4: {public} and public_ipv4: {private}")
        origin = "option" if private == self.static_private else detected.source
        raise CloudFactsError(
            f"private_ipv4 {private} (from {origin}) is not bound on this host ({held}); set "
            "private_ipv4 to the address Kamailio should listen on, or validate: false if it is "
            "bound later (keepalived, a floating IP)")


def local_addresses_from(run_command, ip_path, public_networks=()):
    """The local_addresses callable for CloudFacts, reading iproute2 through run_command."""
    return lambda: LocalAddresses.collect(run_command, ip_path, parse_networks(public_networks))
