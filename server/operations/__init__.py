"""The operations layer: settings, per-request accounting, and the bundle the lifespan builds.

Only the settings are re-exported here: :mod:`server.settings` imports them, so this package
must not import anything that imports the settings back (import the submodules directly:
:mod:`.bundle`, :mod:`.accounting`, :mod:`.traces`).
"""

from server.operations.settings import OperationsSettings

__all__ = ["OperationsSettings"]
