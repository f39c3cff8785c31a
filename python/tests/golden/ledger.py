"""A ledger of accounts: the source of the proxy generator's golden tests."""

import concoord
from concoord.threadingobject.dlock import DLock

LIMIT = 1000


class Account:
    """A helper class: kept as it is in the proxy module."""

    def __init__(self, owner):
        self.owner = owner
        self.balance = 0


class Ledger:
    """Accounts by name, with a lock a client can hold."""

    kind = "ledger"

    def __init__(self, name="main", limit=LIMIT):
        self.name = name
        self.limit = limit
        self.accounts = {}
        self.lock = DLock()

    def open(self, owner, deposit=0):
        """Opens an account; returns whether it is new."""
        if owner in self.accounts:
            return False
        self.accounts[owner] = Account(owner)
        self.accounts[owner].balance = deposit
        return True

    def deposit(self, owner, *amounts):
        for amount in amounts:
            self.accounts[owner].balance += amount
        return self.accounts[owner].balance

    @concoord.readonly
    def balance(self, owner):
        return self.accounts[owner].balance

    def acquire(self, _concoord_command):
        return self.lock.acquire(_concoord_command)

    def release(self, _concoord_command):
        return self.lock.release(_concoord_command)

    def transfer(self, source, target, amount=1, _concoord_command=None):
        self.accounts[source].balance -= amount
        self.accounts[target].balance += amount

    def _audit(self):
        return sum(a.balance for a in self.accounts.values())

    def __len__(self):
        return len(self.accounts)

    def __str__(self):
        return "%s: %d accounts" % (self.name, len(self.accounts))


def helper(x):
    return x + 1
