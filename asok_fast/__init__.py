"""asok_fast: CORS, compression (zstd, br, gzip) and MD5 ETags for any WSGI or ASGI
application, with a compiled core.

>>> from asok_fast import ResponseMiddleware, ASGIMiddleware
>>> application = ResponseMiddleware(wsgi_app, config={"GZIP": True, "CORS_ORIGINS": "*"})
>>> application = ASGIMiddleware(asgi_app, config={"GZIP": True, "CORS_ORIGINS": "*"})

``IMPLEMENTATION`` says which core runs: ``"compiled"`` or ``"python"``.
"""

from ._core import IMPLEMENTATION
from .asgi import ASGIMiddleware
from .middleware import ResponseMiddleware

__version__ = "0.1.0"

__all__ = ["ASGIMiddleware", "IMPLEMENTATION", "ResponseMiddleware", "__version__"]
