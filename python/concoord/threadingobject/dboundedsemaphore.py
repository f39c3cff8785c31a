"""``DBoundedSemaphore``: a replicated semaphore that refuses over-release."""

from .dsemaphore import DSemaphore


class DBoundedSemaphore(DSemaphore):
    """As ``DSemaphore``, but a release that would raise the count above its
    initial value raises ``ValueError`` and changes nothing (the original returned
    the exception instead of raising it, which crashed its leader)."""

    def __init__(self, count=1):
        DSemaphore.__init__(self, count)
        self.init = self.count

    def release(self, _concoord_command):
        if self.count >= self.init:
            raise ValueError("Semaphore released too many times")
        DSemaphore.release(self, _concoord_command)

    def _concoord_session_closed(self, client):
        self.queue = [c for c in self.queue if c.client != client]
        held = min(self.held.pop(client, 0), self.init - self.count)
        if held > 0:
            self._add(held)

    def __repr__(self):
        return "<DBoundedSemaphore count=%d init=%d>" % (self.count, self.init)
