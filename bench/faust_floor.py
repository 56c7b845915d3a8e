"""A Faust agent that does nothing with its records: the floor under any Faust worker.

Run by ``bench.replay_throughput`` in a subprocess on the filled snapshot topic: the same
Faust version, topic, raw schema and ``take_events`` batching as the worker's agent, but
no decoding, no table and no producing. Prints one JSON line with the time from the
first to the last record once ``--count`` records were seen, then exits.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import faust
import orjson

from streams.pipeline.app import BATCH_MAX, BATCH_WITHIN_S


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--app-id", required=True)
    parser.add_argument("--datadir", required=True)
    parser.add_argument("--web-port", type=int, required=True)
    args = parser.parse_args()

    app = faust.App(
        args.app_id,
        broker=f"kafka://{args.bootstrap}",
        store="memory://",
        datadir=str(Path(args.datadir)),
        consumer_auto_offset_reset="earliest",
        web_port=args.web_port,
        web_bind="127.0.0.1",
    )
    schema = faust.Schema(
        key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )
    topic = app.topic(args.topic, schema=schema)
    seen = {"n": 0, "first": 0.0, "first_batch": 0}

    @app.agent(topic)
    async def drain(stream: faust.StreamT) -> None:
        assert isinstance(stream, faust.Stream)
        async for events in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_S):
            if seen["n"] == 0:  # the clock starts when the first batch is handed over
                seen["first"], seen["first_batch"] = time.perf_counter(), len(events)
            seen["n"] += len(events)
            if seen["n"] >= args.count:
                elapsed = time.perf_counter() - seen["first"]
                timed = seen["n"] - seen["first_batch"]
                print(orjson.dumps({"count": timed, "seconds": elapsed}).decode(), flush=True)
                os._exit(0)  # the measurement is done; skip Faust's shutdown

    logging.basicConfig(level=logging.WARNING)
    sys.argv = [sys.argv[0], "worker", "--loglevel", "warn", "--without-web"]
    app.main()


if __name__ == "__main__":
    main()
