"""Signals sent where Python cannot raise what their handler raises."""

import os
import signal


class SigintInFinalizer:
    """Sends SIGINT to this process from `__del__`, where Python reports whatever the handler
    raises to `sys.unraisablehook` and carries on (as in SQLAlchemy's pool's GC callbacks)."""

    def __del__(self) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # the handler runs at one of these loop edges, inside __del__
            pass
