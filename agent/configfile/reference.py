"""The configuration reference (docs/config-reference.md), generated from the models.

A test keeps the committed file in sync, so the README's reference never drifts
from what the loader accepts.
"""

from __future__ import annotations

import json
from typing import Any

from agent.configfile.root import AgentConfig

HEADER = """# Configuration reference

Generated from the pydantic models by `edge-agent schema --markdown`; do not edit by hand.
Every key is strict: an unknown key is an error naming its YAML line and the nearest valid key.
Relative paths resolve against the config file's folder. Secrets: `${env:NAME}`,
`${file:PATH}`, `${cred:NAME}` (systemd `LoadCredential=`). YAML merge keys
(`<<: *anchor`) work; top-level keys starting with `x-` are ignored, a place for anchors.
"""


def _type(spec: dict[str, Any]) -> str:
    if "$ref" in spec:
        name = spec["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "const" in spec:
        return f"`{json.dumps(spec['const'])}`"
    if "enum" in spec:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in spec["enum"])
    for key in ("anyOf", "oneOf"):
        if key in spec:
            return " \\| ".join(_type(s) for s in spec[key])
    t = spec.get("type", "any")
    if t == "array":
        return f"list of {_type(spec.get('items', {}))}" if "items" in spec else "list"
    if t == "object" and "additionalProperties" in spec:
        return f"map of name -> {_type(spec['additionalProperties'])}"
    return str(t)


def _default(spec: dict[str, Any], required: bool) -> str:
    if required:
        return "**required**"
    if "default" in spec:
        return f"`{json.dumps(spec['default'])}`"
    return ""


def _table(name: str, model: dict[str, Any]) -> list[str]:
    required = set(model.get("required", []))
    rows = [f"## {name}", "", model.get("description", "").strip(), "",
            "| key | type | default | description |", "|---|---|---|---|"]
    for key, spec in model.get("properties", {}).items():
        desc = spec.get("description", "").replace("|", "\\|").replace("\n", " ")
        rows.append(f"| `{key}` | {_type(spec)} | {_default(spec, key in required)} | {desc} |")
    return [*rows, ""]


def config_reference() -> str:
    schema = AgentConfig.model_json_schema(by_alias=True)
    lines = [HEADER]
    lines += _table("AgentConfig", schema)
    for name in sorted(schema.get("$defs", {})):
        lines += _table(name, schema["$defs"][name])
    return "\n".join(lines).rstrip() + "\n"
