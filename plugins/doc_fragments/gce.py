# Copyright: itsp.cluster engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment:
    """GCE project and credentials, shared by every module that talks to GCE (module_utils/sdk/gce.py)."""

    DOCUMENTATION = r"""
options:
  project:
    description: GCE project id. Required for O(provider=gce).
    type: str
  auth_kind:
    description:
      - How to authenticate to GCE. The endpoint never changes it.
      - V(application) uses Application Default Credentials (C(GOOGLE_APPLICATION_CREDENTIALS),
        gcloud's login, or the metadata server).
      - V(serviceaccount) uses O(service_account_file) or O(service_account_contents).
      - V(anonymous) sends no credentials; only for a local stand-in, so it requires O(endpoint_url).
      - Defaults to V(application).
    type: str
    choices: [application, serviceaccount, anonymous]
  service_account_file:
    description: Path to a service account JSON key file, for O(auth_kind=serviceaccount).
    type: path
  service_account_contents:
    description:
      - The service account JSON key itself, for O(auth_kind=serviceaccount) (for example from a vault).
    type: str
requirements:
  - google-cloud-compute and google-auth (provider C(gce))
"""
