"""The config file: its root model (assembled from the plugin registries), the loader with
line-numbered errors, the cross-reference checks and the generated reference."""

from agent.config.errors import ConfigError, ConfigIssue
from agent.configfile.loader import LoadedConfig, load_config, parse_config
from agent.configfile.root import AgentConfig

__all__ = ["AgentConfig", "ConfigError", "ConfigIssue", "LoadedConfig", "load_config", "parse_config"]
