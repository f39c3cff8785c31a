"""Proxy of the built-in ``JobManager``. The original's proxy called methods its
object did not have (``add_job``, ``remove_job``); these are the object's."""

from ._base import Proxy


class JobManager(Proxy):
    TYPE_NAME = "JobManager"

    def schedule(self, job):
        return self._call("schedule", job)

    def deschedule(self, job):
        """Removes the first equal job; ValueError when none is scheduled."""
        return self._call("deschedule", job)

    def update(self, job, key, value):
        """Sets ``key`` to ``value`` in the first equal job (a dict)."""
        return self._call("update", job, key, value)

    def list_jobs(self):
        return self._call("list_jobs")

    def __str__(self):
        return self._call("__str__")
