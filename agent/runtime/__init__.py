"""The daemon's glue between modules: record routing, station pipelines, health wiring."""
