"""One package per protocol (mqtt, sparkplug, modbus, opcua, http, file).

Each holds its config model (`config.py`, with the `build` factory the registry calls), its
client, its sink and/or PLC link, and its probe. The modules directly here are shared by
them and imported by `agent.control` and `agent.outbox`: the Sink contract (`base`), the
PlcLink contract and its supervisor (`link`), TLS, outbox policies, PLC common
settings and the probe rows. Nothing here imports `control`, `outbox` or `runtime`.
"""
