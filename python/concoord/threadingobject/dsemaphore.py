"""``DSemaphore``: a replicated counting semaphore."""

from ..exception import BlockingReturn
from ..host import wake


class DSemaphore:
    """``DSemaphore(count=1)``. Anyone may release; the permits a session holds
    return when it ends. FIFO wake-up."""

    def __init__(self, count=1):
        if count < 0:
            raise ValueError("semaphore initial value must be >= 0")
        self.count = int(count)
        self.queue = []
        # Permits held, by session (what returns when the session ends).
        self.held = {}

    def acquire(self, _concoord_command, blocking=True):
        """Takes a permit (True), or parks until one is released (then True); with
        ``blocking=False`` returns False instead of waiting."""
        if self.count > 0:
            self.count -= 1
            self._grant(_concoord_command.client)
            return True
        if not blocking:
            return False
        self.queue.append(_concoord_command)
        raise BlockingReturn()

    def release(self, _concoord_command):
        """Returns a permit, waking the first waiter if there is one."""
        held = self.held.get(_concoord_command.client, 0)
        if held > 1:
            self.held[_concoord_command.client] = held - 1
        elif held == 1:
            del self.held[_concoord_command.client]
        self._add(1)

    def _add(self, n):
        self.count += n
        while self.count > 0 and self.queue:
            nxt = self.queue.pop(0)
            self.count -= 1
            self._grant(nxt.client)
            wake(nxt, True)

    def _grant(self, client):
        self.held[client] = self.held.get(client, 0) + 1

    def _concoord_session_closed(self, client):
        self.queue = [c for c in self.queue if c.client != client]
        held = self.held.pop(client, 0)
        if held:
            self._add(held)

    def _concoord_cancel(self, command):
        if command in self.queue:
            self.queue.remove(command)
            return True
        return False

    def __repr__(self):
        return "<DSemaphore count=%d>" % self.count
