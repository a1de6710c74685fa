"""What a warm container holds once: settings, tables, clients, the models, the watchlist cache.

Everything here is created on first use, never at import, so importing app.py (chalice deploy,
route-only containers) does not load the models.
"""

from __future__ import annotations

import functools
from typing import Any

from chalicelib import clients, names
from chalicelib.matching.blas import limit_blas_threads
from chalicelib.ops.watchlist_index import IndexCache
from chalicelib.settings import Settings
from chalicelib.store.batch_reads import BatchReader
from chalicelib.store.tables import Tables, tables


@functools.lru_cache(maxsize=1)
def settings() -> Settings:
    return Settings.from_env()


class Runtime:
    """Handed to the edge functions; tests build one from their own Settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # numpy is loaded already (the index cache imports it); cap its BLAS before any search.
        limit_blas_threads(settings.blas_threads)
        self.index_cache = IndexCache()
        self.batch_reader = BatchReader()

    @property
    def tables(self) -> Tables:
        return tables(self.settings)

    def client(self, service: str) -> Any:
        return clients.client(service, self.settings)

    @functools.cached_property
    def pipeline(self) -> Any:
        from chalicelib.vision.factory import build_pipeline  # heavy: numpy, onnxruntime, cv2

        return build_pipeline(self.settings)

    @functools.cached_property
    def model_id(self) -> str:
        """The recognizer's id without loading it (routes that only label watchlists)."""
        from chalicelib.vision.factory import embedding_id

        return embedding_id(self.settings)

    @functools.cached_property
    def link_secret(self) -> str:
        """Signs alert links; ConfigurationError where the stage has none (link_secret.py)."""
        from chalicelib.link_secret import read_link_secret

        return read_link_secret(self.settings, self.client("secretsmanager"))

    def queue_url(self, name: str) -> str:
        return names.queue_url(self.settings, name)

    @property
    def topic_arn(self) -> str:
        return names.topic_arn(self.settings)


@functools.lru_cache(maxsize=4)
def runtime(s: Settings | None = None) -> Runtime:
    return Runtime(s or settings())
