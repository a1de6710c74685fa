"""What a warm container holds once: settings, tables, clients, the models, the watchlist cache.

Everything here is created on first use, never at import or construction, so each function of
app.py builds only what it uses from the one runtime() they share: the API and the sweeps never
build the frames worker's index cache or batch reader, nor cap numpy's BLAS threads; importing
app.py (chalice deploy, route-only containers) loads no model.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from chalicelib import clients, names
from chalicelib.settings import Settings
from chalicelib.store.tables import Tables, tables

if TYPE_CHECKING:
    from chalicelib.ops.watchlist_index import IndexCache
    from chalicelib.store.batch_reads import BatchReader


@functools.lru_cache(maxsize=1)
def settings() -> Settings:
    return Settings.from_env()


class Runtime:
    """Handed to the edge functions; tests build one from their own Settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @functools.cached_property
    def index_cache(self) -> IndexCache:
        """The frames worker's watchlist indexes; every 1:N search goes through one of them."""
        from chalicelib.matching.blas import limit_blas_threads
        from chalicelib.ops.watchlist_index import IndexCache

        # numpy is loaded now (the index cache imports it); cap its BLAS before any search.
        limit_blas_threads(self.settings.blas_threads)
        return IndexCache()

    @functools.cached_property
    def batch_reader(self) -> BatchReader:
        """The frames worker's reads of a batch's deployment, camera and watchlist rows."""
        from chalicelib.store.batch_reads import BatchReader

        return BatchReader()

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
