"""Loopback scoring servers with the request/response shape of verl's reward router.

``POST /classify`` with ``{"model", "input", "use_activation"}`` answers
``{"data": [{"index": 0, "probs": [score], "num_classes": 1}]}`` (vLLM's classify endpoint, which
verl's reward loop reads as ``data[-1].probs[-1]``). Options: a fixed latency, a number of
concurrent slots (requests beyond it queue, as in a serving engine with a batch limit), failing
a deterministic fraction of inputs once (HTTP 503), failing chosen inputs always, and counters of
successful responses per input (``GET /stats``) to check that each sample is scored exactly once.

Run in a background thread (:class:`ScoringServer`) or as a process (``python -m
benchmarks.servers --port-file F ...``), which keeps the server off the client's CPU core.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import json
import threading
import time
from collections.abc import Callable


def _fraction_hit(text: str, fraction: float) -> bool:
    h = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
    return (h % 1_000_000) < fraction * 1_000_000


def hash_score(text: str) -> float:
    """A deterministic pseudo-score in [0, 1) of a text (the latency benchmark's 'model')."""
    h = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")
    return (h % 1_000_003) / 1_000_003


class _State:
    def __init__(self, score_fn, latency_s, slots, fail_once_fraction, fail_always, fail_status):
        self.score_fn = score_fn
        self.latency_s = latency_s
        self.slots = slots
        self.fail_once_fraction = fail_once_fraction
        self.fail_always = fail_always or (lambda text: False)
        self.fail_status = fail_status
        self.successes: collections.Counter = collections.Counter()
        self.failed_once: set = set()
        self.failures = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.sem = None


def make_app(state: _State):
    from aiohttp import web

    async def classify(request):
        if state.sem is None and state.slots:
            state.sem = asyncio.Semaphore(state.slots)
        body = await request.json()
        text = body.get("input")
        if not isinstance(text, str) or "model" not in body:
            return web.json_response({"error": "expected fields 'model' and 'input' (a string)"}, status=400)
        if state.fail_always(text) or (
            state.fail_once_fraction > 0 and text not in state.failed_once and _fraction_hit(text, state.fail_once_fraction)
        ):
            state.failed_once.add(text)
            state.failures += 1
            return web.json_response({"error": "injected failure"}, status=state.fail_status)
        state.in_flight += 1
        state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            if state.sem is not None:
                async with state.sem:
                    if state.latency_s:
                        await asyncio.sleep(state.latency_s)
            elif state.latency_s:
                await asyncio.sleep(state.latency_s)
            score = state.score_fn(text)
        finally:
            state.in_flight -= 1
        state.successes[text] += 1
        return web.json_response({"data": [{"index": 0, "probs": [score], "num_classes": 1}]})

    async def stats(request):
        return web.json_response(
            {
                "successes": sum(state.successes.values()),
                "distinct": len(state.successes),
                "max_successes_per_input": max(state.successes.values(), default=0),
                "failures": state.failures,
                "max_in_flight": state.max_in_flight,
            }
        )

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/classify", classify)
    app.router.add_get("/stats", stats)
    return app


class ScoringServer:
    """A loopback /classify server in a background thread; ``address`` is ``host:port``."""

    def __init__(
        self,
        score_fn: Callable[[str], float] = hash_score,
        latency_s: float = 0.0,
        slots: int | None = None,
        fail_once_fraction: float = 0.0,
        fail_always: Callable[[str], bool] | None = None,
        fail_status: int = 503,
    ):
        self.state = _State(score_fn, latency_s, slots, fail_once_fraction, fail_always, fail_status)
        self.address: str | None = None
        self._loop = None
        self._thread = None
        self._runner = None

    def __enter__(self) -> ScoringServer:
        from aiohttp import web

        ready = threading.Event()

        def serve():
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._runner = web.AppRunner(make_app(self.state), access_log=None)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            self._loop.run_until_complete(site.start())
            port = site._server.sockets[0].getsockname()[1]
            self.address = f"127.0.0.1:{port}"
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._runner.cleanup())
            self._loop.close()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        if not ready.wait(30):
            raise RuntimeError("the loopback scoring server did not start within 30 s")
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)

    @property
    def successes(self) -> collections.Counter:
        return self.state.successes


def main(argv=None) -> int:
    from aiohttp import web

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port-file", required=True, help="where to write the bound port")
    p.add_argument("--latency", type=float, default=0.02)
    p.add_argument("--slots", type=int, default=64)
    p.add_argument("--fail-once-fraction", type=float, default=0.0)
    a = p.parse_args(argv)
    state = _State(hash_score, a.latency, a.slots, a.fail_once_fraction, None, 503)

    async def run():
        runner = web.AppRunner(make_app(state), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        with open(a.port_file + ".tmp", "w") as f:
            json.dump({"port": port, "started": time.time()}, f)
        import os

        os.replace(a.port_file + ".tmp", a.port_file)
        await asyncio.Event().wait()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
