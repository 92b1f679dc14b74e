"""A reward model served on the CPU the way verl's reward loop reaches vLLM's (registered by
:mod:`tea_verl.cpu` as the replica for ``reward.reward_model.rollout.name=vllm``).

verl 0.9.1 starts a reward model as rollout replicas (``RewardModelManager``), puts its naive
router in front of their HTTP addresses, and its reward loop (verl's own discriminative path, or
the ``best_of_n`` manager through ``reward_model_via_best_of_n``) posts ``/classify`` requests to
the router. vLLM does not run on a CPU; this module plugs the same pieces in:

* :class:`HFRewardServer`, a Ray actor (``num_cpus=0``) holding a Hugging Face
  sequence-classification model (any directory ``AutoModelForSequenceClassification`` loads) and
  serving vLLM's ``POST /classify`` on the node's address: ``{"model", "input"}`` in,
  ``{"data": [{"index": 0, "probs": [score], "num_classes": 1}]}`` out, the score being the
  model's last logit for the text, tokenized as given (the chat template already put the special
  tokens in); ``GET /health``. Requests are scored one at a time (the CPU's cores are the
  trainer's too). With ``TEA_CPU_REWARD_LOG=FILE`` each request served is appended to FILE as a
  JSON line (``input``, ``score``; an injected fault: ``input``, ``fault``): ``tea-verl smoke
  --reward-model`` keeps that record. ``TEA_CPU_REWARD_FAULTS`` injects faults for drills and
  tests (:func:`read_faults`): HTTP 503 once or always for a share of the inputs, or the server's
  process exiting after a number of requests (a killed server).
* :class:`HFRewardReplica`, the ``RolloutReplica`` that verl's ``RewardModelManager`` builds for
  the reward model: colocated or standalone, it starts that actor (no worker group: the model
  needs no weight sync) and reports its ``host:port`` as the address the router forwards to.

Only the reward model: on the CPU backend the policy's rollout is ``hf_cpu``; a policy rollout
named ``vllm`` is refused with that advice.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time

import ray
import torch
from verl.workers.rollout.replica import RolloutMode, RolloutReplica

CLASSIFY = "classify"
FAULT_KEYS = ("fail_once_share", "fail_always_share", "only_containing", "exit_after")


def read_faults(text: str | None) -> dict:
    """``TEA_CPU_REWARD_FAULTS``: a JSON object with any of ``fail_once_share`` (that share of the
    distinct inputs gets HTTP 503 on its first request, then its score), ``fail_always_share`` (that
    share gets 503 on every request), ``only_containing`` (both shares count only inputs holding
    this text, e.g. one prompt's words) and ``exit_after`` (the server's process exits when a
    request arrives after that many were answered). Which inputs fail is a hash of the text: every
    run fails the same ones."""
    if not text:
        return {}
    try:
        faults = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"TEA_CPU_REWARD_FAULTS is not JSON ({exc}): expected e.g. {{\"fail_once_share\": 0.3}}") from None
    unknown = sorted(set(faults) - set(FAULT_KEYS)) if isinstance(faults, dict) else None
    if unknown is None or unknown:
        raise ValueError(f"TEA_CPU_REWARD_FAULTS: expected a JSON object with keys among {FAULT_KEYS}, got {text!r}")
    for key in ("fail_once_share", "fail_always_share"):
        if key in faults and not 0.0 <= float(faults[key]) <= 1.0:
            raise ValueError(f"TEA_CPU_REWARD_FAULTS: {key} must lie in [0, 1], got {faults[key]!r}")
    return faults


def _hash_share(text: str, salt: str) -> float:
    import hashlib

    digest = hashlib.blake2b(f"{salt}:{text}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64


class HFRewardServer:
    """A sequence-classification model behind vLLM's ``/classify`` endpoint (a Ray actor)."""

    def __init__(self, model_path: str):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.model_path = model_path
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.model = AutoModelForSequenceClassification.from_pretrained(model_path, torch_dtype=torch.float32).eval()
        self._lock = threading.Lock()
        self._runner = None
        self.requests = 0
        self._log = os.environ.get("TEA_CPU_REWARD_LOG")
        self._faults = read_faults(os.environ.get("TEA_CPU_REWARD_FAULTS"))
        self._failed_once: set[str] = set()

    async def start(self) -> str:
        """Bind the HTTP server on this node's address (a free port); returns ``host:port``."""
        from aiohttp import web

        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post(f"/{CLASSIFY}", self._classify)
        app.router.add_get("/health", self._health)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        host = ray.util.get_node_ip_address()
        site = web.TCPSite(self._runner, host, 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        return f"{host}:{port}"

    def _score(self, text: str) -> float:
        with self._lock, torch.no_grad():
            ids = self.tokenizer(text, add_special_tokens=False, return_tensors="pt")
            return float(self.model(**ids).logits[0, -1])

    async def _classify(self, request):
        from aiohttp import web

        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "the body is not JSON"}, status=400)
        text = body.get("input") if isinstance(body, dict) else None
        if not isinstance(text, str) or not text:
            return web.json_response({"error": "expected a JSON object with 'input', a non-empty string"}, status=400)
        fault = self._fault(text)
        if fault is not None:
            self._record({"input": text, "fault": fault})
            return web.json_response({"error": "injected fault (TEA_CPU_REWARD_FAULTS)"}, status=fault)
        score = await asyncio.get_running_loop().run_in_executor(None, self._score, text)
        self.requests += 1
        self._record({"input": text, "score": score})
        return web.json_response({"data": [{"index": 0, "probs": [score], "num_classes": 1}]})

    def _record(self, row: dict) -> None:
        if self._log:  # TEA_CPU_REWARD_LOG: every request served, for the smoke's record and the tests
            with open(self._log, "a") as f:
                f.write(json.dumps(row) + "\n")

    def _fault(self, text: str) -> int | None:
        """The injected fault for this request (an HTTP status), or None; exits the process when
        ``exit_after`` requests have been answered (TEA_CPU_REWARD_FAULTS)."""
        f = self._faults
        if not f:
            return None
        if "exit_after" in f and self.requests >= int(f["exit_after"]):
            self._record({"input": text, "fault": "exit", "t": time.time()})
            os._exit(1)  # a killed server: no response, the connection drops
        if f.get("only_containing") and str(f["only_containing"]) not in text:
            return None
        if _hash_share(text, "always") < float(f.get("fail_always_share", 0.0)):
            return 503
        if text not in self._failed_once and _hash_share(text, "once") < float(f.get("fail_once_share", 0.0)):
            self._failed_once.add(text)
            return 503
        return None

    async def _health(self, request):
        from aiohttp import web

        return web.json_response({"model": self.model_path, "requests": self.requests})

    async def wake_up(self):  # the model stays loaded: there is no cache to free on a CPU
        return None

    async def sleep(self):
        return None

    async def shutdown(self):
        if self._runner is not None:
            await self._runner.cleanup()


class HFRewardReplica(RolloutReplica):
    """One reward-model replica: an :class:`HFRewardServer` actor, colocated or standalone."""

    def _refuse_policy(self):
        if not self.is_reward_model:
            raise RuntimeError("on tea-verl's CPU backend the name 'vllm' serves only the reward model "
                               "(reward.reward_model.rollout.name=vllm); the policy's rollout is "
                               "actor_rollout_ref.rollout.name=hf_cpu")

    async def init_colocated(self, resource_pool):
        self._refuse_policy()
        self.rollout_mode = RolloutMode.COLOCATED
        self.resource_pool = resource_pool
        await self.launch_servers()

    async def init_standalone(self):
        self._refuse_policy()
        self.rollout_mode = RolloutMode.STANDALONE
        await self.launch_servers()

    async def init_hybrid(self, worker_group):
        self._refuse_policy()
        raise RuntimeError("a reward model is not a hybrid rollout")

    async def launch_servers(self):
        path = getattr(self.model_config, "local_path", None) or self.model_config.path
        server = ray.remote(HFRewardServer).options(
            name=f"tea_cpu_reward_model_{self.replica_rank}{self.name_suffix}",
            num_cpus=0,
            max_concurrency=self.max_concurrency,
        ).remote(model_path=path)
        self._server_address = await server.start.remote()
        self.servers = [server]
        self._server_handle = server
