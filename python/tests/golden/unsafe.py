"""Everything the safety check (-s) refuses, one per line."""

import os
import random
from time import time
import threading


class Unsafe:
    def __init__(self):
        self.items = set()

    def now(self):
        return time()

    def pick(self, options):
        return random.choice(options)

    def where(self):
        return id(self)

    def dump(self, path):
        with open(path, "w") as f:
            print(self.items, file=f)

    def run(self, code):
        return eval(code)

    def order(self):
        return [x for x in {"a", "b"}] + [y for y in self.items]

    def loop(self):
        for name in {"a", "b", "c"}:
            yield name

    def fingerprint(self, value):
        return hash(value)
