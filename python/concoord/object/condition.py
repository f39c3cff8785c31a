"""A condition variable, written with ``concoord.threadingobject``."""

from concoord.threadingobject.dcondition import DCondition


class Condition:
    def __init__(self, lock=None):
        self.condition = DCondition(lock)

    def __repr__(self):
        return repr(self.condition)

    def acquire(self, _concoord_command):
        return self.condition.acquire(_concoord_command)

    def release(self, _concoord_command):
        return self.condition.release(_concoord_command)

    def wait(self, _concoord_command):
        return self.condition.wait(_concoord_command)

    def notify(self, _concoord_command):
        return self.condition.notify(_concoord_command)

    def notifyAll(self, _concoord_command):
        return self.condition.notify_all(_concoord_command)
