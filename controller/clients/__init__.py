"""Outbound I/O only: GitHub, Railway, n8n, Anthropic and the secret store, over httpx.

Nothing else in the project talks to the network (import-linter checks it). Clients own their
retries (tenacity) and rate limits; they know nothing about reconcilers or the queue.
"""
