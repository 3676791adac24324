"""Plain-Python client of the Alter Product Customizer public API (no Dagster).

    from alter_pipeline.api import AlterClient, RetryPolicy, Timeouts, errors

    with AlterClient(base_url, key, token, timeouts=Timeouts(read=10)) as client:
        order = client.get_order(33)
        for page in client.iter_order_pages(concurrency=8):
            ...

See `client.py` for the retry safety of each endpoint and `paging/` for how listings stay
complete while orders change.
"""

from alter_pipeline.api import errors, models
from alter_pipeline.api._wire import ClientStats
from alter_pipeline.api.client import AlterClient
from alter_pipeline.api.errors import (
    AlterAPIError,
    AuthenticationError,
    IncompleteListingError,
    InvalidRequestError,
    MissingScopeError,
    NotFoundError,
    ProtocolError,
    RateLimitedError,
    ServerError,
    TransportError,
)
from alter_pipeline.api.paging import Page
from alter_pipeline.api.retry import RetryPolicy, Safety, Timeouts

__all__ = [
    "AlterAPIError",
    "AlterClient",
    "AuthenticationError",
    "ClientStats",
    "IncompleteListingError",
    "InvalidRequestError",
    "MissingScopeError",
    "NotFoundError",
    "Page",
    "ProtocolError",
    "RateLimitedError",
    "RetryPolicy",
    "Safety",
    "ServerError",
    "Timeouts",
    "TransportError",
    "errors",
    "models",
]
