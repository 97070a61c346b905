"""The aws, gce and azure providers and their shared HTTP layer, with the socket replaced by a
script of replies (the real-HTTP path is tests/integration/test_metadata_server.py)."""

import json

import pytest
from ansible_collections.itsp.cluster.plugins.module_utils.providers.aws import AwsProvider
from ansible_collections.itsp.cluster.plugins.module_utils.providers.azure import AzureProvider
from ansible_collections.itsp.cluster.plugins.module_utils.providers.base import (
    MetadataHttp,
    NoReply,
    NotHere,
    ProviderError,
    Reply,
    Unreachable,
    parse_endpoint,
)
from ansible_collections.itsp.cluster.plugins.module_utils.providers.gce import GceProvider

E = "http://169.254.169.254"
TOKEN = "AQAEAJ0cF8g5mX_yw1r5n6xh2PkXcZ8fM9QkqYQ2b1c="
META = "/latest/meta-data/"


def reply(status, body=b"", headers=None):
    return Reply(status, {k.lower(): v for k, v in (headers or {}).items()},
                 body.encode() if isinstance(body, str) else body)


class Script:
    """Stands in for MetadataHttp._exchange: answers from a dict keyed by (method, path); a value
    that is a list is consumed one reply per call; an exception instance is raised."""

    def __init__(self, routes):
        self.routes = routes
        self.calls = []

    def __call__(self, method, path, headers):
        self.calls.append((method, path, dict(headers)))
        answer = self.routes.get((method, path), reply(404, "Not Found"))
        if isinstance(answer, list):
            answer = answer.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def scripted(provider, routes, sleeps=None):
    script = Script(routes)
    provider.http._exchange = script
    if sleeps is not None:
        provider.http.sleep = sleeps.append
    return script


def aws_routes(overrides=None):
    mac = "02:18:00:00:00:11"
    routes = {
        ("PUT", "/latest/api/token"): reply(200, TOKEN, {"X-aws-ec2-metadata-token-ttl-seconds": "60"}),
        ("GET", META + "instance-id"): reply(200, "i-0a11bb22cc33dd44e"),
        ("GET", META + "instance-type"): reply(200, "c6i.large"),
        ("GET", META + "placement/availability-zone"): reply(200, "eu-west-1a"),
        ("GET", META + "placement/region"): reply(200, "eu-west-1"),
        ("GET", META + "mac"): reply(200, mac),
        ("GET", META + "network/interfaces/macs/"): reply(200, mac + "/"),
        ("GET", META + f"network/interfaces/macs/{mac}/device-number"): reply(200, "0"),
        ("GET", META + f"network/interfaces/macs/{mac}/local-ipv4s"): reply(200, "198.18.0.11\n198.18.0.111"),
        ("GET", META + f"network/interfaces/macs/{mac}/public-ipv4s"): reply(200, "203.0.113.11"),
    }
    routes.update(overrides or {})
    return routes


# -- MetadataHttp ----------------------------------------------------------------------------------

def test_parse_endpoint():
    assert parse_endpoint("http://169.254.169.254") == ("169.254.169.254", 80)
    assert parse_endpoint("http://127.0.0.1:8080/") == ("127.0.0.1", 8080)
    assert parse_endpoint("http://[fd00:ec2::254]") == ("fd00:ec2::254", 80)
    for bad in ("https://169.254.169.254", "169.254.169.254", "http://169.254.169.254/latest", "http://"):
        with pytest.raises(ValueError) as failure:
            parse_endpoint(bad)
        assert str(failure.value) == f"metadata_endpoint must look like http://HOST[:PORT], got {bad!r}"
    with pytest.raises(ValueError) as failure:
        parse_endpoint("http://127.0.0.1:99999")
    assert str(failure.value) == "metadata_endpoint has an invalid port: 'http://127.0.0.1:99999'"


def test_429_is_retried_honouring_retry_after_then_succeeds():
    http = MetadataHttp(E, 1.0, "aws imdsv2")
    sleeps = []
    http.sleep = sleeps.append
    http._exchange = Script({("GET", "/x"): [reply(429, headers={"Retry-After": "1"}),
                                             reply(429), reply(200, "ok")]})
    assert http.request("GET", "/x").body == b"ok"
    assert sleeps == [1.0, 0.4]  # Retry-After, then exponential backoff (0.2 s doubling)


def test_429_wait_is_capped():
    http = MetadataHttp(E, 1.0, "aws imdsv2", max_wait=2.0)
    sleeps = []
    http.sleep = sleeps.append
    http._exchange = Script({("GET", "/x"): [reply(429, headers={"Retry-After": "3600"}), reply(200)]})
    assert http.request("GET", "/x").status == 200
    assert sleeps == [2.0]


def test_429_three_times_fails():
    http = MetadataHttp(E, 1.0, "gce metadata")
    http.sleep = lambda seconds: None
    http._exchange = Script({("GET", "/x"): reply(429)})
    with pytest.raises(ProviderError) as failure:
        http.request("GET", "/x")
    assert str(failure.value) == (
        "gce metadata at http://169.254.169.254: throttled (HTTP 429) 3 times in a row on GET /x; something "
        "on this host is polling the metadata service hard (an agent in a loop?) - find it, or run this "
        "again later")
    assert len(http._exchange.calls) == 3


def test_real_socket_refused_and_silent():
    import socket

    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    http = MetadataHttp(f"http://127.0.0.1:{port}", 0.2, "aws imdsv2")
    with pytest.raises(Unreachable) as failure:
        http.request("GET", "/")
    assert str(failure.value) == f"http://127.0.0.1:{port}: connection refused"
    with socket.socket() as silent:  # accepts (the kernel does) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        http = MetadataHttp(f"http://127.0.0.1:{port}", 0.2, "aws imdsv2")
        with pytest.raises(NoReply) as failure:
            http.request("GET", "/latest/meta-data/")
    assert str(failure.value) == (f"aws imdsv2 at http://127.0.0.1:{port}: connected, "
                                  "but no reply to GET /latest/meta-data/ within 0.2 s")


# -- AWS ----------------------------------------------------------------------------------------------

def test_aws_detects_and_sends_the_token():
    provider = AwsProvider(E, 1.0)
    script = scripted(provider, aws_routes())
    found = provider.detect()
    assert (found.provider, found.source, found.region, found.zone, found.instance_id,
            found.instance_type) == (
        "aws", "aws imdsv2 http://169.254.169.254", "eu-west-1", "eu-west-1a", "i-0a11bb22cc33dd44e",
        "c6i.large")
    assert [(n.mac, n.private_ipv4, n.public_ipv4, n.ipv6) for n in found.interfaces] == [
        ("02:18:00:00:00:11", "198.18.0.11", "203.0.113.11", [])]
    assert script.calls[0] == ("PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "60"})
    assert all(headers == {"X-aws-ec2-metadata-token": TOKEN} for _, _, headers in script.calls[1:])


def test_aws_orders_interfaces_primary_first_and_reads_ipv6():
    second = "02:18:00:00:01:11"
    routes = aws_routes({
        ("GET", META + "network/interfaces/macs/"): reply(200, f"{second}/\n02:18:00:00:00:11/"),
        ("GET", META + f"network/interfaces/macs/{second}/device-number"): reply(200, "1"),
        ("GET", META + f"network/interfaces/macs/{second}/local-ipv4s"): reply(200, "198.18.1.11"),
        ("GET", META + f"network/interfaces/macs/{second}/ipv6s"): reply(200, "2001:db8::11\n2001:db8::12"),
    })
    provider = AwsProvider(E, 1.0)
    scripted(provider, routes)
    found = provider.detect()
    assert [(n.mac, n.private_ipv4, n.public_ipv4, n.ipv6) for n in found.interfaces] == [
        ("02:18:00:00:00:11", "198.18.0.11", "203.0.113.11", []),
        (second, "198.18.1.11", None, ["2001:db8::11", "2001:db8::12"]),
    ]


def test_aws_region_from_zone_when_the_region_key_is_missing():
    provider = AwsProvider(E, 1.0)
    routes = aws_routes()
    del routes[("GET", META + "placement/region")]
    scripted(provider, routes)
    assert provider.detect().region == "eu-west-1"


@pytest.mark.parametrize("status", [400, 404, 405])
def test_aws_not_here(status):
    provider = AwsProvider(E, 1.0)
    scripted(provider, {("PUT", "/latest/api/token"): reply(status)})
    with pytest.raises(NotHere):
        provider.detect()


def test_aws_silent_token_put_but_get_answers_is_the_hop_limit():
    provider = AwsProvider(E, 1.0)
    scripted(provider, {("PUT", "/latest/api/token"): NoReply("silent"),
                        ("GET", META): reply(401, "Unauthorized")})
    with pytest.raises(ProviderError) as failure:
        provider.detect()
    assert str(failure.value) == (
        "aws imdsv2 at http://169.254.169.254: PUT /latest/api/token got no reply within 1 s although "
        "GET /latest/meta-data/ answers (HTTP 401); the token reply is sent with the instance's "
        "HttpPutResponseHopLimit as IP TTL and is dropped when it has to cross more hops (a container, a "
        "proxy); raise it with `aws ec2 modify-instance-metadata-options --instance-id ID "
        "--http-put-response-hop-limit 2` or run this on the instance itself")


@pytest.mark.parametrize("probe", [NoReply("silent too"), reply(404)], ids=["silent", "404"])
def test_aws_silent_token_put_and_no_imds_behind_it_is_no_reply(probe):
    provider = AwsProvider(E, 1.0)
    scripted(provider, {("PUT", "/latest/api/token"): NoReply("silent"), ("GET", META): probe})
    with pytest.raises(NoReply) as failure:
        provider.detect()
    assert str(failure.value) == "silent"


def test_aws_token_rejected_on_get():
    provider = AwsProvider(E, 1.0)
    scripted(provider, aws_routes({("GET", META + "instance-id"): reply(401)}))
    with pytest.raises(ProviderError) as failure:
        provider.detect()
    assert str(failure.value) == (
        "aws imdsv2 at http://169.254.169.254: GET /latest/meta-data/instance-id answered HTTP 401; IMDS "
        "issued a token and then rejected it; check for a proxy or NAT in front of http://169.254.169.254 "
        "that mixes up instances")


def test_aws_server_error():
    provider = AwsProvider(E, 1.0)
    scripted(provider, {("PUT", "/latest/api/token"): reply(503)})
    with pytest.raises(ProviderError) as failure:
        provider.detect()
    assert str(failure.value) == ("aws imdsv2 at http://169.254.169.254: PUT /latest/api/token answered HTTP "
                                  "503; check what listens on http://169.254.169.254")


def test_aws_garbage_address():
    mac = "02:18:00:00:00:11"
    provider = AwsProvider(E, 1.0)
    scripted(provider, aws_routes({
        ("GET", META + f"network/interfaces/macs/{mac}/local-ipv4s"): reply(200, "<html>login</html>")}))
    with pytest.raises(ProviderError) as failure:
        provider.detect()
    assert str(failure.value) == (
        f"aws imdsv2 at http://169.254.169.254: {META}network/interfaces/macs/{mac}/local-ipv4s did not "
        "return an IPv4 address (got '<html>login</html>'); check that http://169.254.169.254 is the "
        "cloud's metadata service and not a proxy, a captive portal or a mock")


# -- GCE ------------------------------------------------------------------------------------------------

GCE_HEADERS = {"Metadata-Flavor": "Google"}
GCE_NICS = [{"accessConfigs": [{"externalIp": "203.0.113.21", "type": "ONE_TO_ONE_NAT"}],
             "ip": "198.18.0.21", "mac": "42:01:c6:12:00:15", "network": "projects/1/networks/default",
             "ipv6s": ["2001:db8:21::5"]},
            {"accessConfigs": [], "ip": "198.18.1.21", "mac": "42:01:c6:12:01:15"}]


def gce_routes(overrides=None):
    base = "/computeMetadata/v1/instance/"
    routes = {
        ("GET", base + "id"): reply(200, "4711000000000000021", GCE_HEADERS),
        ("GET", base + "zone"): reply(200, "projects/123456789012/zones/europe-west1-b", GCE_HEADERS),
        ("GET", base + "machine-type"): reply(200, "projects/123456789012/machineTypes/e2-standard-2",
                                              GCE_HEADERS),
        ("GET", base + "network-interfaces/?recursive=true"): reply(200, json.dumps(GCE_NICS), GCE_HEADERS),
    }
    routes.update(overrides or {})
    return routes


def test_gce_detects():
    provider = GceProvider(E, 1.0)
    script = scripted(provider, gce_routes())
    found = provider.detect()
    assert (found.provider, found.region, found.zone, found.instance_id, found.instance_type) == (
        "gce", "europe-west1", "europe-west1-b", "4711000000000000021", "e2-standard-2")
    assert [(n.mac, n.private_ipv4, n.public_ipv4, n.ipv6) for n in found.interfaces] == [
        ("42:01:c6:12:00:15", "198.18.0.21", "203.0.113.21", ["2001:db8:21::5"]),
        ("42:01:c6:12:01:15", "198.18.1.21", None, []),
    ]
    assert all(headers == GCE_HEADERS for _, _, headers in script.calls)


def test_gce_answer_without_the_flavor_header_is_not_gce():
    provider = GceProvider(E, 1.0)
    scripted(provider, gce_routes({("GET", "/computeMetadata/v1/instance/id"): reply(200, "4711")}))
    with pytest.raises(ProviderError) as failure:
        provider.detect()
    assert str(failure.value) == (
        "gce metadata at http://169.254.169.254: GET /computeMetadata/v1/instance/id answered without the "
        "header Metadata-Flavor: Google that the GCE metadata server always sends; something else answers "
        "at http://169.254.169.254")


def test_gce_zone_garbage():
    provider = GceProvider(E, 1.0)
    scripted(provider, gce_routes({("GET", "/computeMetadata/v1/instance/zone"): reply(
        200, "europe-west1-b", GCE_HEADERS)}))
    with pytest.raises(ProviderError) as failure:
        provider.detect()
    assert str(failure.value) == (
        "gce metadata at http://169.254.169.254: /computeMetadata/v1/instance/zone did not return "
        "projects/NUMBER/zones/ZONE (got 'europe-west1-b'); check that http://169.254.169.254 is the "
        "cloud's metadata service and not a proxy, a captive portal or a mock")


def test_gce_interfaces_not_a_list():
    provider = GceProvider(E, 1.0)
    scripted(provider, gce_routes({("GET", "/computeMetadata/v1/instance/network-interfaces/?recursive=true"):
                                     reply(200, '{"ip": "198.18.0.21"}', GCE_HEADERS)}))
    with pytest.raises(ProviderError) as failure:
        provider.detect()
    assert str(failure.value).startswith(
        "gce metadata at http://169.254.169.254: "
        "/computeMetadata/v1/instance/network-interfaces/?recursive=true did not return a JSON list "
        "of network interfaces (got '{\"ip\": \"198.18.0.21\"}')")


# -- Azure ----------------------------------------------------------------------------------------------

INSTANCE = "/metadata/instance?api-version=2021-02-01"
LB = "/metadata/loadbalancer?api-version=2021-02-01"


def azure_document(public="198.51.100.31"):
    return {
        "compute": {"location": "westeurope", "zone": "", "vmId": "4c2e06a4-1f4e-4b6a-9c43-6a1b2c3d4e5f",
                    "vmSize": "Standard_D2s_v5", "name": "proxy3"},
        "network": {"interface": [{
            "ipv4": {"ipAddress": [{"privateIpAddress": "198.18.0.31", "publicIpAddress": public}]},
            "ipv6": {"ipAddress": [{"privateIpAddress": "2001:db8:31::4"}]},
            "macAddress": "000D3A180031",
        }]},
    }


def test_azure_detects_with_public_in_the_instance_document():
    provider = AzureProvider(E, 1.0)
    script = scripted(provider, {("GET", INSTANCE): reply(200, json.dumps(azure_document()))})
    found = provider.detect()
    assert (found.provider, found.source, found.region, found.zone, found.instance_id,
            found.instance_type) == (
        "azure", "azure imds http://169.254.169.254", "westeurope", None,
        "4c2e06a4-1f4e-4b6a-9c43-6a1b2c3d4e5f", "Standard_D2s_v5")
    assert [(n.mac, n.private_ipv4, n.public_ipv4, n.ipv6) for n in found.interfaces] == [
        ("00:0d:3a:18:00:31", "198.18.0.31", "198.51.100.31", ["2001:db8:31::4"])]
    assert [path for _, path, _ in script.calls] == [INSTANCE]
    assert script.calls[0][2] == {"Metadata": "true"}


def test_azure_public_from_the_load_balancer():
    provider = AzureProvider(E, 1.0)
    lb = {"loadbalancer": {"publicIpAddresses": [
        {"frontendIpAddress": "198.51.100.99", "privateIpAddress": "198.18.9.9"},
        {"frontendIpAddress": "198.51.100.31", "privateIpAddress": "198.18.0.31"}]}}
    scripted(provider, {("GET", INSTANCE): reply(200, json.dumps(azure_document(public=""))),
                        ("GET", LB): reply(200, json.dumps(lb))})
    found = provider.detect()
    assert found.interfaces[0].public_ipv4 == "198.51.100.31"
    assert found.source == "azure imds http://169.254.169.254 (public address from /metadata/loadbalancer)"


@pytest.mark.parametrize("lb_reply", [reply(404), reply(200, '{"loadbalancer": {"publicIpAddresses": []}}')],
                         ids=["404", "empty"])
def test_azure_without_any_public_address(lb_reply):
    provider = AzureProvider(E, 1.0)
    scripted(provider, {("GET", INSTANCE): reply(200, json.dumps(azure_document(public=""))),
                        ("GET", LB): lb_reply})
    found = provider.detect()
    assert (found.interfaces[0].public_ipv4, found.source) == (None, "azure imds http://169.254.169.254")


def test_azure_400_quotes_imds():
    provider = AzureProvider(E, 1.0)
    scripted(provider, {("GET", INSTANCE): reply(400, json.dumps(
        {"error": "Bad request. api-version is invalid or was not specified in the request."}))})
    with pytest.raises(ProviderError) as failure:
        provider.detect()
    assert str(failure.value) == (
        f"azure imds at http://169.254.169.254: GET {INSTANCE} answered HTTP 400; IMDS says: Bad request. "
        "api-version is invalid or was not specified in the request.; IMDS refuses requests without the "
        "header Metadata: true or with X-Forwarded-For (a proxy between this host and "
        "http://169.254.169.254?)")


def test_azure_document_without_network():
    provider = AzureProvider(E, 1.0)
    scripted(provider, {("GET", INSTANCE): reply(200, json.dumps({"compute": {}}))})
    with pytest.raises(ProviderError) as failure:
        provider.detect()
    assert str(failure.value) == (
        f"azure imds at http://169.254.169.254: {INSTANCE} did not return the instance document (compute, "
        "network.interface) (got '{\"compute\": {}}'); check that http://169.254.169.254 is the cloud's "
        "metadata service and not a proxy, a captive portal or a mock")


def test_azure_not_here():
    provider = AzureProvider(E, 1.0)
    scripted(provider, {})
    with pytest.raises(NotHere):
        provider.detect()


@pytest.mark.parametrize("token", ["_MRovSuxNq_tcgLaeHa1S8EfWrXJK", "-leading-dash", "AQAEAA+base64/==", "a"])
def test_token_pattern_accepts_base64_and_urlsafe_tokens(token):
    """Found on the lab: url-safe tokens may start with '_' or '-' (about 1 in 30 did)."""
    from ansible_collections.itsp.cluster.plugins.module_utils.providers.base import TOKEN_RE

    assert TOKEN_RE.match(token)


@pytest.mark.parametrize("token", ["<html>", "two words", "", "x" * 256])
def test_token_pattern_rejects_junk(token):
    from ansible_collections.itsp.cluster.plugins.module_utils.providers.base import TOKEN_RE

    assert not TOKEN_RE.match(token)
