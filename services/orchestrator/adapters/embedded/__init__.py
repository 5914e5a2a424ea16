"""Embedded dependencies for `orchestrator demo`: nats-server, the local LLM (llama.cpp via xllamacpp), its model."""
