"""Per station: inspection -> decision -> actions. `station` runs the camera's frames
through the station's inference worker; `flow` hands each inspection to the decision
engine and acts on the decision: commands to their PLC dispatchers first, then records
(`records`: the router to each station's sinks) and bookkeeping, ordered behind the
commands' "sent" futures (`sends`); `outcomes` turns each command's outcome into its
audit line, metrics and `stop` record."""
