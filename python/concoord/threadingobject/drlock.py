"""``DRLock``: a replicated re-entrant lock, owned by a client session."""

from ..exception import BlockingReturn
from ..host import wake


class DRLock:
    """Re-entrant per session: the owner's acquires count up, its releases count
    down, and at zero the lock passes to the first waiter (and to every other
    queued acquire of that waiter's session)."""

    def __init__(self):
        self.owner = None
        self.count = 0
        # [command, count to restore] per waiter (a Condition's waiter restores its
        # own count; a plain acquire takes 1).
        self.queue = []

    def acquire(self, _concoord_command, blocking=True):
        """True at once if free or already the caller's session's; otherwise parks
        (True once granted), or False with ``blocking=False``."""
        client = _concoord_command.client
        if self.owner is None:
            self.owner, self.count = client, 1
            return True
        if self.owner == client:
            self.count += 1
            return True
        if not blocking:
            return False
        self.queue.append([_concoord_command, 1])
        raise BlockingReturn()

    def release(self, _concoord_command):
        """Counts down the caller's ownership (RuntimeError for a non-owner)."""
        if not self._is_owned(_concoord_command.client):
            raise RuntimeError("cannot release un-acquired lock")
        self.count -= 1
        if self.count == 0:
            self._hand_over()

    def locked(self):
        return self.owner is not None

    def _is_owned(self, client):
        return self.owner is not None and self.owner == client

    def _release_all(self):
        """Releases fully (for a Condition's wait): the count it had."""
        count = self.count
        self.count = 0
        self._hand_over()
        return count

    def _enqueue(self, command, count):
        """Queues ``command`` to be woken (True) owning the lock with ``count``; it
        is granted at once if the lock is free."""
        if self.owner is None:
            self.owner, self.count = command.client, count
            wake(command, True)
        else:
            self.queue.append([command, count])

    def _hand_over(self):
        self.owner = None
        self.count = 0
        if not self.queue:
            return
        command, count = self.queue.pop(0)
        self.owner, self.count = command.client, count
        wake(command, True)
        # The new owner's other queued acquires re-enter at once.
        rest = []
        for entry in self.queue:
            if entry[0].client == self.owner:
                self.count += entry[1]
                wake(entry[0], True)
            else:
                rest.append(entry)
        self.queue = rest

    def _concoord_session_closed(self, client):
        self.queue = [e for e in self.queue if e[0].client != client]
        if self.owner == client:
            self._hand_over()

    def _concoord_cancel(self, command):
        for entry in self.queue:
            if entry[0] == command:
                self.queue.remove(entry)
                return True
        return False

    def __repr__(self):
        return "<DRLock owner=%r count=%d>" % (self.owner, self.count)

    def __str__(self):
        return "<DRLock object>"
