"""The worker's web pages: metrics, the gateways' status, the polling plan, one security's state.

Served by Faust's web server on ``--web-port``; ``/flow/<SECURITY>/`` is routed to the
worker that holds the security's table partition.
"""

from __future__ import annotations

import time
from typing import Any

import faust
from faust.web import Request, Response, View

from streams.observability.metrics import exposition
from streams.pipeline.processor import SecurityProcessor
from streams.polling.service import PollingService


def register_views(app: faust.App, polling: PollingService | None, table: Any) -> None:
    """Add the pages to ``app``; ``polling`` is None for a worker run with --no-poller."""

    @app.page("/metrics/")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            return self.bytes(exposition(), content_type="text/plain; version=0.0.4")

    @app.page("/status/")
    class Status(View):
        async def get(self, request: Request) -> Response:
            if polling is None:
                return self.json({"poller": False, "gateways": []})
            return self.json(
                {
                    "poller": True,
                    "worker": polling.worker_id,
                    "stopping": polling.pool.stopped,
                    "schedule": polling.schedule,
                    "flows_read": polling.flows_read(),
                    "watchlist": polling.watchlist.status(),
                    "gateways": polling.pool.status(),
                }
            )

    @app.page("/polling/")
    class Polling(View):
        async def get(self, request: Request) -> Response:
            if polling is None:
                return self.json({"poller": False, "gateways": []})
            return self.json({"poller": True, **polling.pool.polling_status(time.time())})

    @app.page("/flow/{security}/")
    class SecurityStateView(View):
        @app.table_route(table=table, match_info="security")  # type: ignore[arg-type]
        async def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
            security = str(kwargs["security"])
            blob = table.get(security.encode())
            if blob is None:
                return self.json({"security": security, "error": "no state"}, status=404)
            return self.json({"security": security, **SecurityProcessor.describe(blob)})
