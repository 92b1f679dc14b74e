"""Throughput and no-loss check of the ``best_of_n`` reward manager against a loopback server.

The server (a separate process, ``benchmarks.servers``) answers verl's /classify request shape
after a fixed latency, with a fixed number of concurrent slots. The manager is built by verl's own
``load_reward_manager`` from the composed ``tea_trainer`` config (reward model behind the router),
and scores every sample the way verl's ``RewardLoopWorker.compute_score_batch`` calls it: one task
per single-sample DataProto, all started at once. Timed: from the first task to the last score.
``--via worker`` times verl's ``RewardLoopWorker.compute_score_batch`` itself on the whole batch:
that adds verl's own per-sample work in the same event loop (slicing the batch into 16,384
DataProtos and reading its OmegaConf config per sample before any request goes out). verl spreads
a batch over ``reward.num_workers`` (default 8) such workers, which divides that part.

    python -m benchmarks.scoring                     # 16384 samples, 20 ms, 64 slots, clean and 10% failing once
    python -m benchmarks.scoring --samples 2048      # quicker

Prints, per setting (median of ``--repeats`` runs, all ratios listed): wall time, the ideal ``samples * latency / slots``, their ratio, and the server's
counters (successful responses, distinct inputs, most successes for one input, injected failures).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time


def _start_server(latency: float, slots: int, fail_fraction: float, workdir: str):
    port_file = tempfile.mktemp(prefix="port-", dir=workdir)
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.servers", "--port-file", port_file, "--latency", str(latency),
         "--slots", str(slots), "--fail-once-fraction", str(fail_fraction)],
    )
    t0 = time.time()
    while not os.path.exists(port_file):
        if proc.poll() is not None or time.time() - t0 > 60:
            proc.kill()
            raise RuntimeError("the scoring server process did not start")
        time.sleep(0.05)
    with open(port_file) as f:
        return proc, f"127.0.0.1:{json.load(f)['port']}"


async def _stats(address: str) -> dict:
    import aiohttp

    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://{address}/stats") as r:
            return await r.json()


def build_items(tok_dir: str, samples: int, per_prompt: int = 16):
    from benchmarks.tiny import PROMPTS, build_tokenizer, rollout_batch

    tok = build_tokenizer(tok_dir)
    prompts = [f"{PROMPTS[i % len(PROMPTS)]} {i}" for i in range(max(1, samples // per_prompt))]
    data = rollout_batch(tok, prompts=prompts, n=per_prompt, seed=1)
    t0 = time.perf_counter()
    items = [data[i : i + 1] for i in range(len(data))]  # what verl's worker does before scoring
    return tok, data, items, time.perf_counter() - t0


def _config(tok_dir: str, concurrency: int, retries: int = 4):
    from benchmarks.common import compose_tea_trainer, rm_best_of_n_overrides

    return compose_tea_trainer(
        [
            *rm_best_of_n_overrides(tok_dir),
            f"actor_rollout_ref.model.path={tok_dir}",
            f"reward.best_of_n.max_concurrency={concurrency}",
            f"reward.best_of_n.max_retries={retries}",
            "reward.best_of_n.backoff_s=0.05",
        ]
    )


def make_manager(tok_dir: str, tok, address: str, concurrency: int, retries: int = 4):
    from verl.trainer.ppo.reward import load_reward_manager

    cfg = _config(tok_dir, concurrency, retries)
    return load_reward_manager(cfg, tok, reward_router_address=address, reward_model_tokenizer=tok)


async def _score_all(manager, items) -> tuple[float, list]:
    t0 = time.perf_counter()
    out = await asyncio.gather(*(manager.run_single(it) for it in items))
    wall = time.perf_counter() - t0
    await manager.close()
    return wall, out


async def _score_worker(worker, data) -> tuple[float, list]:
    t0 = time.perf_counter()
    out = await worker.compute_score_batch(data)
    wall = time.perf_counter() - t0
    await worker.reward_manager.close()
    return wall, out


def run_once(items, tok, tok_dir, latency, slots, concurrency, fail_fraction, workdir, via="manager", data=None) -> dict:
    proc, address = _start_server(latency, slots, fail_fraction, workdir)
    try:
        if via == "worker":  # verl's RewardLoopWorker: it slices the batch per sample itself
            from verl.experimental.reward_loop.reward_loop import RewardLoopWorker

            worker = RewardLoopWorker(_config(tok_dir, concurrency), address)
            manager = worker.reward_manager
            wall, out = asyncio.run(_score_worker(worker, data))
        else:
            manager = make_manager(tok_dir, tok, address, concurrency)
            wall, out = asyncio.run(_score_all(manager, items))
        stats = asyncio.run(_stats(address))
    finally:
        proc.terminate()
        proc.wait(10)
    ideal = len(items) * latency / slots
    scores_ok = all(isinstance(o["reward_score"], float) for o in out) and len(out) == len(items)
    return {
        "via": via,
        "samples": len(items),
        "client_concurrency": concurrency,
        "fail_once_fraction": fail_fraction,
        "wall_s": wall,
        "ideal_s": ideal,
        "ratio": wall / ideal,
        "server_successes": stats["successes"],
        "server_distinct_inputs": stats["distinct"],
        "max_successes_per_input": stats["max_successes_per_input"],
        "injected_failures": stats["failures"],
        "client_retries": manager.stats["retries"],
        "every_sample_scored_once": scores_ok
        and stats["successes"] == len(items) == stats["distinct"]
        and stats["max_successes_per_input"] == 1,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--samples", type=int, default=16384)
    p.add_argument("--latency", type=float, default=0.02)
    p.add_argument("--slots", type=int, default=64)
    p.add_argument("--concurrency", default="64", help="client max_concurrency values to run")
    p.add_argument("--fail", default="0,0.1", help="fractions of inputs failing once (HTTP 503)")
    p.add_argument("--repeats", type=int, default=3, help="runs per setting; the row shows the median-ratio run")
    p.add_argument("--via", default="manager,worker",
                   help="manager: run_single on single-sample DataProtos, all at once (what the manager does); "
                        "worker: verl's RewardLoopWorker.compute_score_batch on the whole batch (adds verl's "
                        "per-sample slicing and config reads in the same event loop)")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as workdir:
        tok_dir = os.path.join(workdir, "tok")
        tok, data, items, slicing = build_items(tok_dir, a.samples)
        print(f"{len(items)} samples, server latency {a.latency * 1000:.0f} ms, {a.slots} slots; "
              f"ideal {len(items) * a.latency / a.slots:.2f} s; slicing the batch into single-sample "
              f"DataProtos as verl's worker does: {slicing:.2f} s")
        print(f"{'via':>8} {'concurrency':>11} {'fail once':>9} {'wall s':>8} {'ratio':>6} {'successes':>9} {'distinct':>8} "
              f"{'max/input':>9} {'injected':>8} {'retries':>7}  scored once (all runs)")
        for via, frac, conc in (
            (v, float(f), int(c)) for v in a.via.split(",") for f in a.fail.split(",") for c in a.concurrency.split(",")
        ):
            runs = [run_once(items, tok, tok_dir, a.latency, a.slots, conc, frac, workdir, via, data) for _ in range(a.repeats)]
            runs.sort(key=lambda r: r["ratio"])
            r = runs[len(runs) // 2]
            r["every_sample_scored_once"] = all(x["every_sample_scored_once"] for x in runs)
            print(f"{via:>8} {conc:>11} {frac:>9.2f} {r['wall_s']:>8.2f} {r['ratio']:>6.3f} {r['server_successes']:>9} "
                  f"{r['server_distinct_inputs']:>8} {r['max_successes_per_input']:>9} {r['injected_failures']:>8} "
                  f"{r['client_retries']:>7}  {r['every_sample_scored_once']}   (ratios of the {len(runs)} runs: "
                  + ", ".join(f"{x['ratio']:.3f}" for x in runs) + ")", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
