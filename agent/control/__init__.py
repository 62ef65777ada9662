"""The command path to PLCs: link protocol, command dispatcher, heartbeat,
trigger handshake and reset watch. Records never use this path."""
