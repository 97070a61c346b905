# Copyright: itsp.cluster engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every cloud backend shares: the one exception type and the API call counter."""

from __future__ import annotations

import threading


class CloudApiError(Exception):
    """A cloud API call failed. `code` is the cloud's own error code (AuthFailure, PERMISSION_DENIED…)."""

    def __init__(self, provider, operation, scope, code, message, http_status=None, attempts=1):
        self.provider = provider
        self.operation = operation
        self.scope = scope
        self.code = code
        self.message = message
        self.http_status = http_status
        self.attempts = attempts
        super().__init__(self.describe())

    def describe(self):
        status = f" (HTTP {self.http_status})" if self.http_status else ""
        text = f"{self.operation} in {self.scope} failed: {self.code}{status}: {self.message}"
        if self.attempts > 1:
            text += f" [gave up after {self.attempts} attempts]"
        return text

    def as_result(self):
        """Extra keys for fail_json, so a playbook can branch on the code instead of parsing msg."""
        return {
            "error_code": self.code,
            "http_status": self.http_status,
            "operation": self.operation,
            "attempts": self.attempts,
        }


class ApiCallCounter:
    """Counts requests sent per API operation, retries included; shared by worker threads."""

    def __init__(self):
        self._counts = {}
        self._lock = threading.Lock()

    def add(self, operation, count=1):
        with self._lock:
            self._counts[operation] = self._counts.get(operation, 0) + count

    def as_dict(self):
        with self._lock:
            return dict(sorted(self._counts.items()))
