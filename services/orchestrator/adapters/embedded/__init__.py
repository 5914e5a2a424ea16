"""Embedded dependencies for `orchestrator demo`: the local LLM (llama.cpp via xllamacpp) and its model file."""
