"""The exception the sizing code raises for bad input; cloud API failures are CloudApiError."""

from ansible_collections.itsp.cluster.plugins.module_utils.errors import ItspError


class SizingError(ItspError):
    """A problem the operator can act on: bad input, an empty catalog, a catalog cache to refuse.

    ``code`` keeps the cloud's own error code (``InvalidParameterValue``, ``403``, ...) when
    the problem came from an API call, so the module can return it unchanged.
    """
