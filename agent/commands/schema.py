"""Print the JSON Schema of the config file (the same as config/agent.schema.json).

With --payloads DIR, write the JSON Schema of every MQTT payload instead
(DIR/<kind>.schema.json, as in config/schemas/). With --markdown, print the
configuration reference (docs/config-reference.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from agent.configfile.root import AgentConfig


def config_schema_text() -> str:
    return json.dumps(AgentConfig.model_json_schema(by_alias=True), indent=2, sort_keys=True) + "\n"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--payloads", metavar="DIR", type=Path, default=None,
                   help="write the payload schemas (defect, inspection, stop, alarm, drift, "
                        "status, metrics) to DIR/<kind>.schema.json instead")
    p.add_argument("--markdown", action="store_true",
                   help="print the configuration reference as Markdown instead")


def main(args: argparse.Namespace) -> int:
    if getattr(args, "payloads", None) is not None:
        from agent.decision.payloads import write_payload_schemas

        for path in write_payload_schemas(args.payloads):
            print(path)
        return 0
    if getattr(args, "markdown", False):
        from agent.configfile.reference import config_reference

        print(config_reference(), end="")
        return 0
    print(config_schema_text(), end="")
    return 0
