"""A re-entrant lock, written with ``concoord.threadingobject``."""

from concoord.threadingobject.drlock import DRLock


class RLock:
    def __init__(self):
        self.lock = DRLock()

    def __repr__(self):
        return repr(self.lock)

    def acquire(self, _concoord_command):
        return self.lock.acquire(_concoord_command)

    def release(self, _concoord_command):
        return self.lock.release(_concoord_command)
