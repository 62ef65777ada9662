"""Modbus TCP/RTU PLC link: addresses, register codecs, the supervised link."""
