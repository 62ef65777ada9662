"""Configuration: strict pydantic models, a YAML loader with line-numbered errors, secrets."""

from agent.config.errors import ConfigError, ConfigIssue
from agent.config.loader import LoadedConfig, load_config, parse_config
from agent.config.models import AgentConfig

__all__ = ["AgentConfig", "ConfigError", "ConfigIssue", "LoadedConfig", "load_config", "parse_config"]
