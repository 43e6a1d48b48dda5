"""A small thread-safe least-recently-used store of values made on first use (query vectors, segment searches,
filter masks, caption quotes): the request path's one memo class."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

import numpy as np

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Remembered(Generic[K, V]):
    """Values made on first use and kept, least recently used out beyond ``capacity``; thread-safe (two threads
    may make the same value at once: both are equal, the second is kept). A numpy array is made read-only before it
    is kept, so a caller cannot change what later requests read; keep other values immutable (tuples, strings)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._items

    def get(self, key: K, make: Callable[[], V]) -> V:
        """The value kept under ``key``, or ``make()`` kept under it (made outside the lock)."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        made = make()
        if isinstance(made, np.ndarray):
            made.setflags(write=False)
        with self._lock:
            self._items[key] = made
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return made
