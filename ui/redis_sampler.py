"""Samples of Redis counters taken while the dashboard runs: a background thread per Redis URL
every SAMPLE_EVERY_S seconds, plus one on each page view. Interval hit rates come from these
(reads.redis_cache.intervals), so they do not depend on anyone resetting the counters."""

from __future__ import annotations

import threading
import time
from collections import deque

import streamlit as st

from reads import redis_cache

SAMPLE_EVERY_S = 10
KEEP = 720  # two hours of samples


class Sampler:
    def __init__(self, url: str):
        self.url = url
        self._samples: deque = deque(maxlen=KEEP)
        self._lock = threading.Lock()
        self._client = None
        threading.Thread(target=self._loop, daemon=True, name="dbpulse-redis-sampler").start()

    def sample_now(self) -> None:
        try:
            if self._client is None:
                self._client = redis_cache.connect(self.url)
            sample = redis_cache.take_sample(self._client, self.url)
        except redis_cache.RedisProblem:
            self._client = None  # reconnect next time; a gap in the samples is fine
            return
        with self._lock:
            if not self._samples or sample.at - self._samples[-1].at >= 1:
                self._samples.append(sample)

    def samples(self) -> list:
        with self._lock:
            return list(self._samples)

    def _loop(self) -> None:
        while True:
            self.sample_now()
            time.sleep(SAMPLE_EVERY_S)


@st.cache_resource(show_spinner=False)
def sampler(url: str) -> Sampler:
    return Sampler(url)
