"""What a user runs: the `orchestrator` command (`cli`), its live views (`monitor`), the demo, the report and the
history printer. These talk to the service through `orchestrator.entrypoints.client` (gRPC) or, for `serve`,
start it through the composition root; nothing under `application/` or `domain/` imports them."""
