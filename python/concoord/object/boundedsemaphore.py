"""A bounded semaphore, written with ``concoord.threadingobject``."""

from concoord.threadingobject.dboundedsemaphore import DBoundedSemaphore


class BoundedSemaphore:
    def __init__(self, count=1):
        self.semaphore = DBoundedSemaphore(count)

    def __repr__(self):
        return repr(self.semaphore)

    def acquire(self, _concoord_command):
        return self.semaphore.acquire(_concoord_command)

    def release(self, _concoord_command):
        return self.semaphore.release(_concoord_command)
