"""Fleet orchestrator: councils of LLM agents deliberating on software tasks, served over gRPC."""

__version__ = "0.1.0"
