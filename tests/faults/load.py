"""A bounded load: a few clients request paths in a loop, and every request and its outcome is counted."""

import http.client
import threading
import time
from collections import Counter

from helpers import Client


class Load:
    """Clients that keep requesting `paths` (round robin) at (host, port) until stopped.

    Counts every request by outcome: the HTTP status, or the name of the error
    ("ConnectionRefusedError", "timeout", ...), and keeps the slowest request's time.
    """

    def __init__(self, address, host, paths, clients=4, timeout=30, make_client=Client):
        self.make_client = make_client  # Client, or one with the same arguments (an HTTPS one)
        self.address = address
        self.host = host
        self.paths = list(paths)
        self.clients = clients
        self.timeout = timeout
        self.outcomes = Counter()
        self.slowest = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = []

    def _client(self, offset):
        client = self.make_client(self.address, self.host, timeout=self.timeout)
        turn = offset
        while not self._stop.is_set():
            path = self.paths[turn % len(self.paths)]
            turn += 1
            start = time.monotonic()
            try:
                outcome = client.get(path).status
            except TimeoutError:
                outcome = "timeout"
            except (OSError, http.client.HTTPException) as error:
                # HTTPException: a response cut short (IncompleteRead) or garbled is a failed request too.
                outcome = type(error).__name__
            took = time.monotonic() - start
            with self._lock:
                self.outcomes[outcome] += 1
                self.slowest = max(self.slowest, took)

    def __enter__(self):
        for offset in range(self.clients):
            thread = threading.Thread(target=self._client, args=(offset,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 5)

    @property
    def requests(self):
        return sum(self.outcomes.values())

    @property
    def failed(self):
        """Every request that did not answer 2xx or 3xx."""
        return sum(n for outcome, n in self.outcomes.items() if not (isinstance(outcome, int) and outcome < 400))
