"""Configuration building blocks: the strict pydantic base, the sections every agent has
(models, stations, evidence, console...), errors, secrets, bounded YAML reading and the
plugin registry type. The root model and the loader are in `agent.configfile`."""

from agent.config.errors import ConfigError, ConfigIssue

__all__ = ["ConfigError", "ConfigIssue"]
