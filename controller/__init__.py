"""project38's engine: ingest, store, work queue, OODA loop, executor, HTTP surface and CLI.

Inbound parsing lives in `handlers/`, per-kind decisions in `reconcilers/`; this package wires
them to PostgreSQL (`controller.store`) and to the network (`controller.clients`).
"""
