"""MQTT: the MES sink (JSON records, status, Home Assistant discovery), operator commands,
the MQTT PLC link and the publish probe, all on one client builder (`client.py`)."""
