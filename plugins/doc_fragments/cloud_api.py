# Copyright: itsp.cluster engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment:
    """Endpoint and retries, shared by every module that calls a cloud API (module_utils/sdk/common.py)."""

    DOCUMENTATION = r"""
options:
  endpoint_url:
    description:
      - API endpoint to use instead of the cloud's public one, C(http://) or C(https://) with a host
        (an EC2 VPC endpoint, a Compute private endpoint, or a local stand-in such as
        C(http://127.0.0.1:8780) in the lab).
      - It changes where requests go, never which credentials are sent (see O(auth_kind)).
    type: str
    aliases: [api_endpoint]
  max_attempts:
    description:
      - Tries per request, the first included, before a throttled, transiently failing or unreachable
        call is reported as failed (1 to 20). Both clouds back off exponentially between tries
        (0.5 s doubling, at most 8 s on GCE; botocore's adaptive mode on AWS); each try waits at most
        30 s for an answer (and, on AWS, 5 s for the connection).
      - A failure reports the tries that were made in RV(attempts).
    type: int
    default: 5
"""
