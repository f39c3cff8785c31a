"""Proxy of the built-in ``Bank`` (the original's ``concoord.proxy.bank``), with the
original's inverted debit guard fixed: an overdraft is refused.

``close(acct)`` is the bank's method; ``disconnect()`` ends the proxy's session."""

from ._base import Proxy


class Bank(Proxy):
    TYPE_NAME = "Bank"

    def open(self, acct):
        """True, or False if the account exists."""
        return self._call("open", acct)

    def close(self, acct):
        """True; KeyError for an unknown account."""
        return self._call("close", acct)

    def deposit(self, acct, amt):
        """The new balance (a float); ValueError for a negative amount."""
        return self._call("deposit", acct, amt)

    def debit(self, acct, amt):
        """The new balance, or False (and nothing changes) when ``amt`` exceeds it."""
        return self._call("debit", acct, amt)

    def balance(self, acct):
        return self._call("balance", acct)

    def __str__(self):
        return self._call("__str__")
