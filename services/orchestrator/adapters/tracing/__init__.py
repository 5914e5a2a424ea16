"""OpenTelemetry traces of the deliberation protocol (GenAI semantic conventions), off unless configured.

- `setup`: settings from the standard OTEL_* environment, the tracer provider, flush on shutdown.
- `port`: the `Tracing` port (defined in `application/tracing.py`, re-exported) and reading gRPC metadata.
- `facade`: `OtelTracing`, the port on OpenTelemetry, with the attribute whitelist of `attributes`.
- `propagation`: W3C trace context in/out of gRPC metadata, NATS headers and Ray call carriers.
- `grpc_interceptor`: a server span per RPC, child of the caller's `traceparent`.
- `traced_ports`: chat / execute_tool spans around the agent gateway, the checker and the sandbox.
- `worker`: tracing inside Ray workers, from the forwarded OTEL_* variables; the agents' `chat` spans.
"""
