"""OPC UA PLC link (asyncua): certificates, data types, the supervised link."""
