"""Print the JSON Schema of the config file (the same as config/agent.schema.json)."""

from __future__ import annotations

import argparse
import json

from agent.config.models import AgentConfig


def config_schema_text() -> str:
    return json.dumps(AgentConfig.model_json_schema(by_alias=True), indent=2, sort_keys=True) + "\n"


def add_arguments(p: argparse.ArgumentParser) -> None:
    pass


def main(args: argparse.Namespace) -> int:
    print(config_schema_text(), end="")
    return 0
