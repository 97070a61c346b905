"""The one exception the sizing code raises; the module turns it into fail_json(msg=...)."""


class SizingError(Exception):
    """A problem the operator can act on: bad input, an empty catalog, a cloud API error.

    ``code`` keeps the cloud's own error code (``InvalidParameterValue``, ``403``, ...) when
    the problem came from an API call, so the module can return it unchanged.
    """

    def __init__(self, msg, code=None):
        super().__init__(msg)
        self.msg = msg
        self.code = code
