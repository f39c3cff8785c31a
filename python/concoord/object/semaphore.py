"""The tutorial's semaphore, written with ``concoord.threadingobject``."""

from concoord.threadingobject.dsemaphore import DSemaphore


class Semaphore:
    def __init__(self, count=1):
        self.semaphore = DSemaphore(count)

    def __repr__(self):
        return repr(self.semaphore)

    def acquire(self, _concoord_command):
        return self.semaphore.acquire(_concoord_command)

    def release(self, _concoord_command):
        return self.semaphore.release(_concoord_command)
