"""asok_fast: CORS, gzip and MD5 ETags for any WSGI application, with a compiled core.

>>> from asok_fast import ResponseMiddleware
>>> application = ResponseMiddleware(app, config={"GZIP": True, "CORS_ORIGINS": "*"})

``IMPLEMENTATION`` says which core runs: ``"compiled"`` or ``"python"``.
"""

from ._core import IMPLEMENTATION
from .middleware import ResponseMiddleware

__version__ = "0.1.0"

__all__ = ["IMPLEMENTATION", "ResponseMiddleware", "__version__"]
