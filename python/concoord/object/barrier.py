"""A barrier, written with ``concoord.threadingobject``."""

from concoord.threadingobject.dbarrier import DBarrier


class Barrier:
    def __init__(self, count=1):
        self.barrier = DBarrier(count)

    def __repr__(self):
        return repr(self.barrier)

    def __str__(self):
        return str(self.barrier)

    def wait(self, _concoord_command):
        return self.barrier.wait(_concoord_command)

    def parties(self):
        return self.barrier.parties

    def n_waiting(self):
        return self.barrier.n_waiting
