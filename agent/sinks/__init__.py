"""Sinks (MES side) and PLC links. One module per kind."""

# Load the config package first: its models import every plugin module here, and
# those import agent.config.base, so importing a plugin module first (e.g.
# `import agent.sinks.plc_common`) would otherwise hit a half-initialised module.
import agent.config  # noqa: F401  isort: skip
