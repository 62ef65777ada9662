"""Reset a latched stop (or pause/resume a station) on a running daemon, as an operator.

The command goes over the daemon's authenticated MQTT command path (the `commands` of an
MQTT sink in the same config: enabled, key, allowed client ids): it is signed with the
key (HMAC, the key is never sent), audited by the daemon, and this command waits for the
daemon's answer to its id. Only an answer signed with one of the config's keys counts:
anyone can publish on the result topic. Exit 0 accepted, 1 rejected or no (authentic)
answer, 2 bad config.

    edge-agent reset --config line.yaml --line line3 --station infeed
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from agent.commands import EXIT_CONFIG, load_or_report
from agent.protocols.mqtt.client import build_mqtt_client, connect_and_wait
from agent.protocols.mqtt.command_auth import Keyring
from agent.protocols.mqtt.config import MqttSinkConfig
from agent.protocols.mqtt.factory import command_keyring, topic_map
from agent.protocols.mqtt.topics import TopicMap
from agent.types import new_event_id


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", required=True, help="the daemon's YAML config file")
    p.add_argument("--line", required=True)
    p.add_argument("--station", required=True)
    p.add_argument("--action", choices=("reset", "pause", "resume"), default="reset")
    p.add_argument("--client-id", default="edge-agent-cli", help="operator client id")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the answer")


def main(args: argparse.Namespace) -> int:
    return send_command(args.config, args.action, args.line, args.station, args.client_id,
                        args.timeout)


def send_command(config: str, action: str, line: str | None, station: str, client_id: str,
                 timeout: float, extra: dict[str, Any] | None = None) -> int:
    """Sign `action` for line/station, publish it, print the daemon's signed answer.
    `line` None: the only line with that station. Exit 0 accepted, 1 not, 2 bad config."""
    loaded = load_or_report(config)
    if loaded is None:
        return EXIT_CONFIG
    cfg = loaded.config
    if line is None:
        lines = [ln for ln, sn, _ in cfg.stations() if sn == station]
        if len(lines) != 1:
            known = ", ".join(f"{ln}/{sn}" for ln, sn, _ in cfg.stations())
            print(f"{config}: station {station!r} "
                  f"{'is on several lines: name --line' if lines else 'is not configured'} "
                  f"(stations: {known})", file=sys.stderr)
            return EXIT_CONFIG
        line = lines[0]
    sinks = [s for s in cfg.sinks.values() if isinstance(s, MqttSinkConfig) and s.commands.enabled]
    if not sinks:
        print(f"{config}: no MQTT sink with commands.enabled: the daemon takes no operator "
              "commands", file=sys.stderr)
        return 2
    sink = sinks[0]
    topics = topic_map(sink, cfg.site, cfg.agent_id)
    keys = command_keyring(sink.commands)
    if keys is None:  # the config model refuses commands.enabled without a key
        print(f"{config}: commands need a key", file=sys.stderr)
        return 2
    body = keys.sign(topics.command_topic, {
        "command": action, "line": line, "station": station,
        "id": new_event_id(), "time": datetime.now(UTC).isoformat(),
        "client_id": client_id, **(extra or {})})
    try:
        reply, forged = _exchange(sink, loaded.base_dir, topics, body, keys, timeout)
    except ValueError as exc:  # unusable TLS files
        print(f"{config}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except ConnectionError as exc:  # the broker refused the connection
        print(f"{action} {line}/{station}: not sent: {exc}", file=sys.stderr)
        return 1
    if reply is None:
        print(f"no answer from agent {cfg.agent_id} within {timeout:g} s on "
              f"{topics.command_result_topic}"
              + (f" ({forged} unauthenticated answer(s) ignored)" if forged else ""),
              file=sys.stderr)
        return 1
    print(f"{action} {line}/{station}: "
          f"{'accepted' if reply.get('accepted') else 'REJECTED'}: {reply.get('reason')}")
    return 0 if reply.get("accepted") else 1


def _exchange(sink: MqttSinkConfig, base_dir: Path, topics: TopicMap, body: dict[str, Any],
              keys: Keyring, timeout: float) -> tuple[dict[str, Any] | None, int]:
    """Subscribe to the result topic, publish the command, wait for the authenticated
    answer to its id. Returns (answer or None, answers to its id ignored as forged).
    ConnectionError (with the reason) when the broker refuses the connection."""
    answer: dict[str, Any] = {}
    forged = [0]
    got = threading.Event()
    subscribed = threading.Event()
    client = build_mqtt_client(sink, "edge-agent reset", base_dir,
                               client_id=f"cli-{body['id'][-12:]}", protocol=sink.protocol,
                               reconnect_max_s=timeout)

    def on_message(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            doc = json.loads(msg.payload)
        except ValueError:
            return
        if not isinstance(doc, dict) or doc.get("id") != body["id"] or got.is_set():
            return
        why = keys.verify(topics.command_result_topic, doc)
        if why is not None or not isinstance(doc.get("accepted"), bool):
            forged[0] += 1
            return
        answer.update(doc)
        got.set()

    client.on_subscribe = lambda *a: subscribed.set()
    client.on_message = on_message
    try:
        refusal = connect_and_wait(client, 60, timeout,
                                   then=lambda c: c.subscribe(topics.command_result_topic, qos=1),
                                   retry=True)  # a broker restarting: try until --timeout
        if refusal is not None:
            raise ConnectionError(f"broker {sink.host}:{sink.port}: {refusal.reason}")
        if not subscribed.wait(timeout):
            return None, 0
        client.publish(topics.command_topic, json.dumps(body), qos=1).wait_for_publish(timeout)
        return (answer if got.wait(timeout) else None), forged[0]
    finally:
        client.disconnect()
        client.loop_stop()
