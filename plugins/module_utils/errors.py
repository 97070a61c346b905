# Copyright: itsp.cluster engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one base class of every error this collection's module_utils raise for a module to report.

A module catches ItspError (or a subclass), and fails with ``fail_json(msg=error.msg,
**error.as_result())``: ``msg`` is the whole, final sentence for a person, ``as_result()`` the
machine-readable extras (a cloud's error code, the HTTP status, attempts) a playbook can branch on.
"""


class ItspError(Exception):
    """A problem a person can act on. ``code`` keeps a cloud's own error code when there is one."""

    def __init__(self, msg, code=None):
        super().__init__(msg)
        self.msg = msg
        self.code = code

    def as_result(self):
        return {"error_code": str(self.code)} if self.code is not None else {}


class CloudApiError(ItspError):
    """A cloud API call failed. ``code`` is the cloud's own error code (AuthFailure, PERMISSION_DENIED…);
    ``attempts`` counts the HTTP attempts of the failing request, retries included."""

    def __init__(self, provider, operation, scope, code, message, http_status=None, attempts=1):
        self.provider = provider
        self.operation = operation
        self.scope = scope
        self.message = message
        self.http_status = http_status
        self.attempts = attempts
        super().__init__(self.describe(code), code=code)

    def describe(self, code=None):
        code = self.code if code is None else code
        status = f" (HTTP {self.http_status})" if self.http_status else ""
        text = f"{self.operation} in {self.scope} failed: {code}{status}: {self.message}"
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
