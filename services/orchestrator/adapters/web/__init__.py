"""The web view: read-only HTML pages and server-sent events over the application, beside the gRPC adapter."""
