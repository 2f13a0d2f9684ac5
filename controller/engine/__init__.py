"""The engine: the work queue, the worker loop, the executor, ingest, the policy source, the
observe context and the periodic tasks. It runs reconcilers and providers; it holds no
knowledge of any kind of object and talks to PostgreSQL only through `controller.store`.
"""
