# Copyright: itsp.cluster engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side instance discovery, batched: a whole fleet from a handful of API calls.

    finder.py   CloudInstanceFinder: module params in, records out (this file)
    records.py  the normalized record (same keys as the on-host cloud_facts module)
    ec2.py      AWS: DescribeInstances + DescribeAddresses per region and page
    gce.py      GCE: instances.aggregatedList across all zones
The SDK clients, retries and error translation are in module_utils/sdk/, CloudApiError in errors.py.
"""

from __future__ import annotations

from ansible_collections.itsp.cluster.plugins.module_utils.cloud_api import ec2, gce
from ansible_collections.itsp.cluster.plugins.module_utils.cloud_api.common import (
    ApiCallCounter,
    CloudApiError,
)
from ansible_collections.itsp.cluster.plugins.module_utils.cloud_api.records import sort_key
from ansible_collections.itsp.cluster.plugins.module_utils.sdk import aws as aws_sdk
from ansible_collections.itsp.cluster.plugins.module_utils.sdk import common as sdk_common
from ansible_collections.itsp.cluster.plugins.module_utils.sdk import gce as gce_sdk

__all__ = ["ApiCallCounter", "CloudApiError", "CloudInstanceFinder", "missing_library"]

# Options only one provider understands; anything else is shared.
PROVIDER_OPTIONS = {
    "aws": ("regions",) + aws_sdk.AWS_OPTIONS,
    "gce": gce_sdk.GCE_OPTIONS + ("zones",),
}
PAGE_SIZE_LIMITS = {"aws": (ec2.PAGE_SIZE_MIN, ec2.PAGE_SIZE_MAX), "gce": (1, gce.PAGE_SIZE_MAX)}


def missing_library(provider):
    """The pip name of the SDK `provider` needs when it cannot be imported, else None."""
    if provider == "aws" and not ec2.HAS_BOTO3:
        return "boto3"
    if provider == "gce" and not gce.HAS_GOOGLE_COMPUTE:
        return "google-cloud-compute"
    return None


def option_problems(params):
    """Rules spanning several options that argument_spec cannot express; [] when all is well."""
    provider = params["provider"]
    problems = []
    foreign = [
        name
        for other, names in PROVIDER_OPTIONS.items()
        if other != provider
        for name in names
        if params.get(name) not in (None, [], {})
    ]
    if foreign:
        problems.append(f"option(s) {', '.join(foreign)} do not apply to provider {provider}")
    if params.get("page_size") is not None:
        low, high = PAGE_SIZE_LIMITS[provider]
        if not low <= params["page_size"] <= high:
            problems.append(f"page_size must be between {low} and {high} for provider {provider}, "
                            f"got {params['page_size']}")
    problems += [problem for problem in (sdk_common.attempts_problem(params.get("max_attempts")),
                                         sdk_common.endpoint_problem(params.get("endpoint_url")))
                 if problem]
    if provider == "aws" and not [region for region in params.get("regions") or [] if region]:
        problems.append("regions must name at least one region for provider aws")
    if provider == "gce":
        problems += [problem for problem in (gce_sdk.project_problem(params.get("project")),) if problem]
    return problems


class CloudInstanceFinder:
    """Finds instances for module params; raises CloudApiError with the cloud's error code."""

    def __init__(self, params, retry_initial=0.5):
        self.params = params
        self.counter = ApiCallCounter()
        self.retry_initial = retry_initial
        self.warnings = []

    def find(self):
        params = self.params
        self.zone_warnings = []
        records = self._find_aws(params) if params["provider"] == "aws" else self._find_gce(params)
        self.warnings = list(self.zone_warnings)
        found = {record["instance_id"] for record in records}
        missing = sorted(set(params.get("instance_ids") or []) - found)
        if missing:
            if params["provider"] == "aws":
                where = "regions " + ", ".join(params["regions"])
            else:
                where = "project " + params["project"]
            self.warnings.append(f"instance_ids not found in {where}: {', '.join(missing)}")
        return {"instances": sorted(records, key=sort_key), "api_calls": self.counter.as_dict()}

    def _find_aws(self, params):
        return ec2.discover(
            params["regions"],
            self.counter,
            filters=params.get("filters"),
            tags=params.get("tags"),
            instance_ids=params.get("instance_ids"),
            page_size=params.get("page_size") or ec2.PAGE_SIZE_MAX,
            endpoint_url=params.get("endpoint_url"),
            profile=params.get("profile"),
            access_key=params.get("access_key"),
            secret_key=params.get("secret_key"),
            session_token=params.get("session_token"),
            max_attempts=params.get("max_attempts") or 5,
        )

    def _find_gce(self, params):
        zones_seen = set()
        records = gce.discover(
            params["project"],
            self.counter,
            zones=params.get("zones"),
            filters=params.get("filters"),
            labels=params.get("tags"),
            instance_ids=params.get("instance_ids"),
            page_size=params.get("page_size") or gce.PAGE_SIZE_MAX,
            max_attempts=params.get("max_attempts") or 5,
            auth_kind=params.get("auth_kind") or "application",
            service_account_file=params.get("service_account_file"),
            service_account_contents=params.get("service_account_contents"),
            api_endpoint=params.get("endpoint_url"),
            retry_initial=self.retry_initial,
            zones_seen=zones_seen,
        )
        unknown = sorted(set(params.get("zones") or []) - zones_seen)
        if unknown and zones_seen:
            self.zone_warnings = [f"zones {', '.join(unknown)} are not zones of project {params['project']} "
                                  f"(it has {', '.join(sorted(zones_seen))}); nothing can be found there"]
        return records
