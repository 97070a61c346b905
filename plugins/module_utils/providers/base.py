# Copyright: itsp.cluster engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every metadata provider shares: one HTTP exchange with the metadata endpoint, the four
ways an exchange can end, and the record a provider hands back.

Runs on the managed host, so only the standard library: http.client rather than urllib because
the detection logic needs to tell "nobody is listening" (try the next place quickly) from
"something accepted the connection and then said nothing" (worth a warning, or the IMDSv2 hop
limit) from "something answered and refused" (fail with a message a person can act on).
"""

import http.client
import ipaddress
import re
import socket
import time
from urllib.parse import urlsplit

from ansible_collections.itsp.cluster.plugins.module_utils.errors import ItspError

MAX_BODY = 256 * 1024
MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
# Tokens, instance ids, machine types, zones: printable, no spaces. Loose on purpose (real ids
# differ per cloud and the lab invents its own; url-safe tokens may start with "_" or "-");
# tight enough that an HTML page or binary junk fails.
TOKEN_RE = re.compile(r"^[A-Za-z0-9._:/+=_-]{1,255}$")


class NotHere(Exception):
    """The endpoint answered, and the answer means "not this cloud" (404 on this dialect's path)."""


class Unreachable(Exception):
    """No TCP connection to the endpoint: refused, no route, or no SYN-ACK within the timeout."""


class NoReply(Exception):
    """TCP connected, but no HTTP reply came within the timeout (or the peer just closed)."""


class ProviderError(ItspError):
    """The endpoint answered as this provider but refused us or made no sense. str() is the whole,
    final message: it names the endpoint and says what to check."""


class Nic:
    """One network interface as a provider reports it; name is filled in from the host later."""

    def __init__(self, mac=None, private_ipv4=None, public_ipv4=None, ipv6=None, name=None):
        self.mac = mac
        self.private_ipv4 = private_ipv4
        self.public_ipv4 = public_ipv4
        self.ipv6 = list(ipv6 or [])
        self.name = name

    def __repr__(self):
        return f"Nic({self.__dict__!r})"


class Detected:
    """What a provider found. interfaces[0] is the primary interface."""

    def __init__(self, provider, source, interfaces, region=None, zone=None, instance_id=None,
                 instance_type=None, warnings=None):
        self.provider = provider
        self.source = source
        self.interfaces = interfaces
        self.region = region
        self.zone = zone
        self.instance_id = instance_id
        self.instance_type = instance_type
        self.warnings = list(warnings or [])


class Reply:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name):
        return self.headers.get(name.lower())


def parse_endpoint(url):
    """http://HOST[:PORT] -> (host, port). Raises ValueError with a message for the user."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or parts.path not in ("", "/") or parts.query:
        raise ValueError(f"metadata_endpoint must look like http://HOST[:PORT], got {url!r}")
    try:
        port = parts.port or 80
    except ValueError as exc:
        raise ValueError(f"metadata_endpoint has an invalid port: {url!r}") from exc
    return parts.hostname, port


class MetadataHttp:
    """One metadata endpoint, as one provider speaks to it. label names the provider in messages
    ("aws imdsv2"); every exchange uses a fresh connection (the IMDSv2 token reply is sent with a
    low IP TTL, which must not stick to later requests)."""

    def __init__(self, endpoint, timeout, label, tries=3, max_wait=2.0, sleep=time.sleep):
        self.endpoint = endpoint.rstrip("/")
        self.host, self.port = parse_endpoint(endpoint)
        self.timeout = timeout
        self.label = label
        self.tries = tries
        self.max_wait = max_wait
        self.sleep = sleep

    @property
    def where(self):
        return f"{self.label} at {self.endpoint}"

    def request(self, method, path, headers=None):
        for attempt in range(1, self.tries + 1):
            reply = self._exchange(method, path, headers or {})
            if reply.status != 429:
                return reply
            if attempt < self.tries:
                self.sleep(self._backoff(reply, attempt))
        raise ProviderError(
            f"{self.where}: throttled (HTTP 429) {self.tries} times in a row on {method} {path}; "
            "something on this host is polling the metadata service hard (an agent in a loop?) "
            "- find it, or run this again later"
        )

    def _backoff(self, reply, attempt):
        retry_after = (reply.header("Retry-After") or "").strip()
        wait = float(retry_after) if retry_after.isdigit() else 0.2 * 2 ** (attempt - 1)
        return min(wait, self.max_wait)

    def _exchange(self, method, path, headers):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            try:
                conn.connect()
            except socket.timeout as exc:
                raise Unreachable(f"no TCP answer from {self.endpoint} within {self.timeout:g} s") from exc
            except OSError as exc:
                reason = exc.strerror or exc.__class__.__name__
                raise Unreachable(f"{self.endpoint}: {reason.lower()}") from exc
            try:
                conn.request(method, path, headers=headers)
                response = conn.getresponse()
                body = response.read(MAX_BODY)
            except socket.timeout as exc:
                raise NoReply(
                    f"{self.where}: connected, but no reply to {method} {path} within {self.timeout:g} s"
                ) from exc
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                raise NoReply(
                    f"{self.where}: connected, but the connection closed without a reply to {method} {path}"
                ) from exc
            except (http.client.HTTPException, OSError) as exc:
                raise ProviderError(
                    f"{self.where}: the reply to {method} {path} is not HTTP ({exc.__class__.__name__}); "
                    f"check what listens on {self.endpoint}"
                ) from exc
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, body)
        finally:
            conn.close()

    # -- reading values out of replies, with the same garbage check everywhere ---------------------
    def garbage(self, what, path, body):
        preview = body[:60].decode("utf-8", "backslashreplace") if isinstance(body, bytes) else str(body)[:60]
        return ProviderError(
            f"{self.where}: {path} did not return {what} (got {preview!r}); check that {self.endpoint} "
            "is the cloud's metadata service and not a proxy, a captive portal or a mock"
        )

    def text(self, reply, path, what="text"):
        try:
            return reply.body.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise self.garbage(what, path, reply.body) from None

    def token(self, reply, path, what):
        value = self.text(reply, path, what)
        if not TOKEN_RE.match(value):
            raise self.garbage(what, path, reply.body)
        return value

    def ipv4(self, value, path, body=None):
        try:
            return str(ipaddress.IPv4Address(value))
        except ValueError:
            raise self.garbage("an IPv4 address", path, body if body is not None else value) from None

    def ipv6(self, value, path, body=None):
        try:
            return str(ipaddress.IPv6Address(value))
        except ValueError:
            raise self.garbage("an IPv6 address", path, body if body is not None else value) from None

    def mac(self, value, path, body=None):
        candidate = str(value).strip().lower().replace("-", ":")
        if re.match(r"^[0-9a-f]{12}$", candidate):
            candidate = ":".join(candidate[i:i + 2] for i in range(0, 12, 2))
        if not MAC_RE.match(candidate):
            raise self.garbage("a MAC address", path, body if body is not None else value)
        return candidate

    def unexpected(self, reply, method, path, hint=""):
        return ProviderError(
            f"{self.where}: {method} {path} answered HTTP {reply.status}"
            + (f"; {hint}" if hint else f"; check what listens on {self.endpoint}")
        )
