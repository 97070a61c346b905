# Copyright: itsp.cluster engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kept for imports: CloudApiError lives in module_utils/errors.py, ApiCallCounter in sdk/common.py."""

from __future__ import annotations

from ansible_collections.itsp.cluster.plugins.module_utils.errors import CloudApiError
from ansible_collections.itsp.cluster.plugins.module_utils.sdk.common import ApiCallCounter

__all__ = ["ApiCallCounter", "CloudApiError"]
