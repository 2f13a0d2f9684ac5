"""Inbound webhooks, one module per source. Sans-I/O: (headers, body) in, `Delivery` out.

Each `from_http(headers, body, *, secret, ...)` verifies, parses and derives the reconcile keys
of one delivery, or raises `Rejection` with the HTTP status and a reason. Nothing here touches
the network, the database or the clock (gidgethub's sansio.py is the model).
"""

from handlers.base import Delivery, Rejection

__all__ = ["Delivery", "Rejection"]
