"""Test helpers: free ports, real Mosquitto brokers."""
