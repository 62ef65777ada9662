"""Frame capture: sources, the capture thread per camera, newest-frame slots.

`agent.config` imports the source config models from this package, and they import
`agent.config.base`; loading `agent.config` first keeps that cycle harmless whichever
package a caller imports first.
"""

import agent.config  # noqa: F401
