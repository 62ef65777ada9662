"""Frame capture: sources, the capture thread per camera, newest-frame slots."""
