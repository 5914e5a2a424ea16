"""Configuration: settings from the environment (`settings`), the optional councils file, logging set-up.

`from orchestrator.config import Settings, load_settings` stays the way to read settings.
"""

from orchestrator.config.settings import Settings, default_store_url, load_settings

__all__ = ["Settings", "default_store_url", "load_settings"]
