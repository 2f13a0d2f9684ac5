"""The reconcile contract (as controller-runtime's pkg/reconcile): what the engine and the
reconcilers share, below both of them.

`plan` (actions, plans, statuses), `context` (what observe reads), `reads` (provider reads),
`reconciler` (the base class, watches, the router, retry policy), `policy` (the gate),
`errors`, `ids`, `fsm`, `payloads`. Imports nothing from the engine, the store or the clients.
"""
