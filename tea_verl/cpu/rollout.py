"""A Hugging Face rollout for verl's agent loop on the CPU (rollout name ``hf_cpu``, registered by
:mod:`tea_verl.cpu`).

verl 0.9.1 serves rollouts with vLLM, SGLang or TensorRT-LLM only. This backend plugs the same
three pieces into verl's registries, with a Hugging Face causal LM, sampled token by token with
its KV cache (temperature, top-k, top-p), in place of the inference engine:

* :class:`HFRolloutServer`, a Ray actor (``num_cpus=0``) holding the policy. ``generate`` is
  verl's token-in-token-out call (``llm_server.LLMServerClient`` awaits it per trajectory); it
  returns a :class:`TokenOutput` with the sampled ids, their log-probabilities under the
  temperature-scaled policy when asked (what the actor recomputes), the stop reason, and
  ``extra_fields["global_steps"]``. Concurrent requests are collected into one padded batch
  (same sampling parameters), so a group of n rollouts costs one batched decode. Sampling is
  reproducible: each request draws its tokens from its own random stream, seeded by the
  rollout seed, the weights' version (the training step they follow, so that a run resumed from a
  checkpoint draws what the uninterrupted run drew), the prompt and the number of identical
  requests before it under these weights. A prompt's samples therefore do not depend on how requests arrive or
  are batched: two runs with one seed and the same weights sample the same answers. Which of a
  prompt's identical requests gets which answer still follows their arrival (verl 0.9.1 sends
  no stable per-sample id to this server), so the order of samples within a group, and with it
  the training updates, can differ between runs.
* :class:`HFReplica`, the ``RolloutReplica`` whose ``launch_servers`` starts that actor beside the
  replica's first worker and sets ``servers``, ``_server_handle`` and ``_server_address`` (a
  router key only: no HTTP).
* :class:`HFServerAdapter`, the in-worker ``BaseRollout``: ``update_weights`` drains the weight
  generator on every rank (an FSDP2 ``full_tensor()`` is a collective) and the replica's leader
  sends the state dict to its server, which loads it. This is verl's "naive" weight sync, which
  its v1 trainer uses for colocated rollouts.

Not for real training: no paged KV cache, no continuous batching, no tensor parallelism.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
from typing import Any

import ray
import torch
from verl.workers.rollout.base import BaseRollout
from verl.workers.rollout.replica import RolloutReplica, TokenOutput

_MAX_BATCH = 256  # requests merged into one batched decode


def _read_probe(path: str | None) -> dict | None:
    """The probe spec of ``TEA_CPU_PROBE``: a JSON file ``{"out": jsonl path, "tokens": {name: id},
    "contexts": [{"label": str, "ids": [token ids]}]}``; after each weight sync the server appends
    one row with the probability of each named token after each context. None without the variable."""
    if not path:
        return None
    import json

    with open(path) as f:
        spec = json.load(f)
    missing = [k for k in ("out", "tokens", "contexts") if k not in spec]
    if missing:
        raise ValueError(f"TEA_CPU_PROBE {path}: missing {missing}; expected out, tokens and contexts")
    return spec


def server_name(replica_rank: int, suffix: str = "") -> str:
    return f"tea_hf_cpu_server_{replica_rank}{suffix}"


class HFRolloutServer:
    """The policy behind one replica; see the module docstring."""

    def __init__(self, config, model_config, replica_rank: int):
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from verl.utils.fs import copy_to_local

        self.config = config
        self.replica_rank = replica_rank
        # model_config arrives as verl's HFModelConfig or as its DictConfig node
        get = model_config.get if hasattr(model_config, "get") else lambda k, d=None: getattr(model_config, k, d)
        path = copy_to_local(get("local_path") or get("path"))
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="sdpa")
        self.model.eval()
        tok = AutoTokenizer.from_pretrained(get("tokenizer_path") or path)
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
        eos = self.model.generation_config.eos_token_id
        eos = tok.eos_token_id if eos is None else eos
        self.eos_ids = set(eos if isinstance(eos, (list, tuple)) else ([eos] if eos is not None else []))
        self.seed = int(getattr(config, "seed", 0) or 0) + 1000 * replica_rank
        engine = (getattr(config, "engine_kwargs", None) or {}).get("hf_cpu") or {}
        self.min_tokens = int(engine.get("min_tokens", 0) or 0)  # rollout.engine_kwargs.hf_cpu.min_tokens
        self._draws: dict[tuple[int, ...], int] = {}  # identical requests so far under these weights
        self.global_steps = None
        self.weight_version = 0
        self._stream_version = 0  # the weights' version in the stream seeds: global_steps + 1 when verl says the step
        self._weight_log = os.environ.get("TEA_CPU_WEIGHT_LOG")
        self._probe = _read_probe(os.environ.get("TEA_CPU_PROBE"))
        self._instance = os.urandom(6).hex()  # tells this server's probe rows from another run's
        self._initial = None
        self._lock = threading.Lock()  # one forward at a time (generation and weight loading)
        self._pending: list[tuple[tuple, list[int], int, asyncio.Future]] = []  # (sampling key, prompt ids, stream seed, result)
        self._wakeup: asyncio.Event | None = None
        self._loop_task = None

    # ---------------------------------------------------------------- generation
    async def generate(self, prompt_ids, sampling_params: dict[str, Any], request_id: str = "", **kwargs) -> TokenOutput:
        sp = dict(sampling_params)
        max_tokens = sp.pop("max_tokens", sp.pop("max_new_tokens", None))
        budget = self.config.response_length
        if max_tokens is None:
            max_tokens = budget
        max_tokens = max(1, min(int(max_tokens), budget))
        temperature = float(sp.get("temperature", 1.0) or 0.0)
        top_p = float(sp.get("top_p", 1.0) if sp.get("top_p") is not None else 1.0)
        top_k = int(sp.get("top_k", -1) if sp.get("top_k") is not None else -1)
        want_logprobs = bool(sp.get("logprobs", False))
        min_tokens = min(int(sp.get("min_tokens") or self.min_tokens), max_tokens)
        key = (temperature, top_p, top_k, max_tokens, min_tokens)
        prompt = [int(t) for t in prompt_ids]
        fut = asyncio.get_running_loop().create_future()
        self._pending.append((key, prompt, self._stream_seed(prompt), fut))
        self._ensure_loop()
        self._wakeup.set()
        token_ids, log_probs = await fut
        return TokenOutput(
            token_ids=token_ids,
            log_probs=log_probs if want_logprobs else None,
            stop_reason="completed",  # an eos or the length budget, as vLLM's "stop" and "length"
            extra_fields={"global_steps": self.global_steps, "weight_version": self.weight_version},
        )

    def _stream_seed(self, prompt: list[int]) -> int:
        """The seed of one request's random stream: (rollout seed, weight version, prompt, how many
        identical requests came before it under these weights), hashed to 63 bits."""
        key = tuple(prompt)
        k = self._draws.get(key, 0)
        self._draws[key] = k + 1
        text = f"{self.seed}:{self._stream_version}:{k}:" + ",".join(map(str, prompt))
        return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") >> 1

    def _ensure_loop(self):
        if self._loop_task is None:
            self._wakeup = asyncio.Event()
            self._loop_task = asyncio.get_running_loop().create_task(self._batch_loop())

    async def _batch_loop(self):
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            await asyncio.sleep(0.005)  # let the rest of a group's requests arrive
            while self._pending:
                key = self._pending[0][0]
                batch = [p for p in self._pending if p[0] == key][:_MAX_BATCH]
                ids = {id(p) for p in batch}
                self._pending = [p for p in self._pending if id(p) not in ids]
                try:
                    results = await asyncio.to_thread(self._generate_batch, key, [p[1] for p in batch], [p[2] for p in batch])
                except Exception as exc:  # noqa: BLE001 - handed to every waiting request
                    for p in batch:
                        if not p[3].done():
                            p[3].set_exception(exc)
                    continue
                for p, res in zip(batch, results):
                    if not p[3].done():
                        p[3].set_result(res)

    @torch.no_grad()
    def _generate_batch(self, key, prompts: list[list[int]], seeds: list[int]):
        temperature, top_p, top_k, max_tokens, min_tokens = key
        with self._lock:
            width = max(len(p) for p in prompts)
            input_ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
            attn = torch.zeros((len(prompts), width), dtype=torch.long)
            for i, p in enumerate(prompts):  # left padding
                input_ids[i, width - len(p):] = torch.tensor(p, dtype=torch.long)
                attn[i, width - len(p):] = 1
            # each row's uniforms for all its tokens, from its own stream
            uniforms = torch.stack([torch.rand(max_tokens, dtype=torch.float64, generator=torch.Generator().manual_seed(s))
                                    for s in seeds])
            tokens, logps, done = _sample(self.model, input_ids, attn, max_tokens, temperature, top_p, top_k,
                                          self.eos_ids, uniforms, min_tokens)
        out = []
        for i in range(len(prompts)):
            n = int(done[i]) if done[i] >= 0 else max_tokens
            out.append((tokens[i, :n].tolist(), logps[i, :n].tolist()))
        return out

    # ---------------------------------------------------------------- weights
    def load_weights(self, state_dict: dict[str, torch.Tensor], global_steps=None) -> int:
        own = self.model.state_dict()
        before = {k: v.clone() for k, v in own.items()} if self._weight_log else None
        unknown = sorted(set(state_dict) - set(own))
        if unknown:
            raise KeyError(f"weight sync: {len(unknown)} parameter(s) unknown to the rollout model, e.g. {unknown[:3]}")
        with self._lock:
            for name, tensor in state_dict.items():
                if own[name].shape != tensor.shape:
                    raise ValueError(f"weight sync: {name} has shape {tuple(tensor.shape)}, the rollout model {tuple(own[name].shape)}")
                own[name].copy_(tensor.to(own[name].dtype))
            self.weight_version += 1
            self._draws.clear()
        if global_steps is not None:
            self.global_steps = global_steps
        # verl syncs at start (global_steps 0) and after each step k (global_steps k), so in one run
        # global_steps + 1 is the weight version; a run resumed from step k's checkpoint syncs first
        # with global_steps k, and so draws the streams the uninterrupted run drew after step k
        self._stream_version = int(global_steps) + 1 if global_steps is not None else self.weight_version
        if self._weight_log:
            self._log_weights(before, global_steps)
        if self._probe:
            self._log_probe(global_steps)
        return len(state_dict)

    def _log_probe(self, global_steps) -> None:
        """Append the policy's next-token probabilities on fixed contexts after this sync
        (``TEA_CPU_PROBE``, see :func:`_read_probe`): how one token's probability moves per step."""
        import json

        probe = self._probe
        rows = []
        with self._lock, torch.no_grad():
            for ctx in probe["contexts"]:
                logits = self.model(input_ids=torch.tensor([ctx["ids"]])).logits[0, -1].double()
                p = torch.softmax(logits, -1)
                rows.append({"label": ctx["label"], **{name: float(p[i]) for name, i in probe["tokens"].items()}})
        row = {"server": self._instance, "replica": self.replica_rank, "seed": self.seed, "weight_version": self.weight_version,
               "global_steps": global_steps, "contexts": rows}
        with open(probe["out"], "a") as f:
            f.write(json.dumps(row) + "\n")

    def _log_weights(self, before, global_steps) -> None:
        """Append how far this sync moved the weights (``TEA_CPU_WEIGHT_LOG``; read by ``tea-verl smoke``)."""
        import json

        own = self.model.state_dict()

        def dist(ref):
            return float(sum(((own[k].float() - ref[k].float()) ** 2).sum() for k in own) ** 0.5)

        if self._initial is None:
            self._initial = before
        row = {"replica": self.replica_rank, "weight_version": self.weight_version, "global_steps": global_steps,
               "l2_from_previous": dist(before), "l2_from_initial": dist(self._initial)}
        with open(self._weight_log, "a") as f:
            f.write(json.dumps(row) + "\n")

    # ------------------------------------------------- verl's control surface (no-ops here)
    async def wake_up(self):
        return None

    async def sleep(self):
        return None

    async def abort_all_requests(self, reject_request: bool = False):
        return {"aborted_count": 0, "request_ids": []}

    async def resume_generation(self):
        return None

    async def clear_kv_cache(self):
        return None

    async def release_kv_cache(self):
        return None

    async def resume_kv_cache(self):
        return None

    async def start_profile(self, **kwargs):
        return None

    async def stop_profile(self):
        return None

    async def wait_for_requests_to_drain(self):
        return None


def _sample(model, input_ids, attn, max_tokens, temperature, top_p, top_k, eos_ids, uniforms, min_tokens=0):
    """Autoregressive sampling with a KV cache; row i's token t is drawn by inverse CDF with the
    uniform ``uniforms[i, t]`` (B, max_tokens), so a row's tokens do not depend on the other rows.

    Returns ``tokens`` (B, T), ``logps`` (B, T) the log-probability of each sampled token under
    ``softmax(logits / temperature)`` (the distribution verl's actor recomputes; greedy decoding
    reports the untempered log-probability), and ``done`` (B,) the generated length including
    the stop token, -1 for sequences cut at ``max_tokens``. As vLLM's ``min_tokens``, no stop token
    is sampled before token ``min_tokens`` (the reported log-probabilities stay the policy's).
    """
    bsz = input_ids.shape[0]
    position_ids = (attn.cumsum(-1) - 1).clamp(min=0)
    past = None
    cur_ids, cur_pos, cur_attn = input_ids, position_ids, attn
    tokens = torch.zeros((bsz, max_tokens), dtype=torch.long)
    logps = torch.zeros((bsz, max_tokens), dtype=torch.float32)
    done = torch.full((bsz,), -1, dtype=torch.long)
    eos = torch.tensor(sorted(eos_ids), dtype=torch.long) if eos_ids else None
    for t in range(max_tokens):
        out = model(input_ids=cur_ids, attention_mask=cur_attn, position_ids=cur_pos, past_key_values=past, use_cache=True)
        past = out.past_key_values
        logits = out.logits[:, -1, :].float()
        if eos is not None and t < min_tokens:
            pick = logits.clone()
            pick[:, eos] = float("-inf")
        else:
            pick = logits
        if temperature > 0:
            scaled = logits / temperature
            logp_all = torch.log_softmax(scaled, dim=-1)
            filt = pick / temperature
            if top_k is not None and top_k > 0:
                kth = torch.topk(filt, min(top_k, filt.shape[-1]), dim=-1).values[:, -1:]
                filt[filt < kth] = float("-inf")
            if top_p is not None and top_p < 1.0:
                sorted_logits, order = torch.sort(filt, descending=True, dim=-1)
                cum = torch.softmax(sorted_logits, -1).cumsum(-1)
                drop = cum - torch.softmax(sorted_logits, -1) > top_p
                sorted_logits[drop] = float("-inf")
                filt = torch.full_like(filt, float("-inf")).scatter(-1, order, sorted_logits)
            cdf = torch.softmax(filt, -1).double().cumsum(-1)
            nxt = torch.searchsorted(cdf, (uniforms[:, t] * cdf[:, -1])[:, None], right=True).squeeze(-1)
            nxt = nxt.clamp_max(cdf.shape[-1] - 1)
        else:
            logp_all = torch.log_softmax(logits, dim=-1)
            nxt = pick.argmax(-1)
        active = done < 0
        nxt = torch.where(active, nxt, torch.zeros_like(nxt))
        tokens[:, t] = nxt
        logps[:, t] = logp_all.gather(-1, nxt[:, None]).squeeze(-1) * active
        if eos is not None:
            finished = active & torch.isin(nxt, eos)
            done[finished] = t + 1
        if bool((done >= 0).all()):
            break
        cur_ids = nxt[:, None]
        cur_attn = torch.cat([cur_attn, active.long()[:, None]], dim=-1)
        cur_pos = cur_pos[:, -1:] + 1
    return tokens, logps, done


class HFReplica(RolloutReplica):
    """One ``hf_cpu`` rollout replica: a :class:`HFRolloutServer` beside its first worker."""

    async def launch_servers(self):
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        if not self.workers:
            raise RuntimeError("the hf_cpu rollout runs only colocated with the actor (hybrid engine)")
        node_id = await self.workers[0].__ray_call__.remote(lambda w: ray.get_runtime_context().get_node_id())
        name = server_name(self.replica_rank, self.name_suffix)
        server = ray.remote(HFRolloutServer).options(
            name=name,
            num_cpus=0,
            max_concurrency=self.max_concurrency,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node_id, soft=False),
        ).remote(config=self.config, model_config=self.model_config, replica_rank=self.replica_rank)
        self.servers = [server]
        self._server_handle = server
        self._server_address = name


class HFServerAdapter(BaseRollout):
    """In-worker side of the ``hf_cpu`` rollout: weight sync from the actor to the server."""

    def __init__(self, config, model_config, device_mesh, replica_rank: int = -1):
        super().__init__(config, model_config, device_mesh)
        rank = int(os.environ.get("RANK", 0))
        world = self.config.tensor_model_parallel_size * self.config.data_parallel_size * self.config.pipeline_model_parallel_size
        self.replica_rank = rank // world if replica_rank == -1 else replica_rank
        self.is_leader = rank % world == 0
        self._server = None

    def _server_handle(self):
        if self._server is None:
            self._server = ray.get_actor(server_name(self.replica_rank))
        return self._server

    async def resume(self, tags: list[str]):
        return None

    async def release(self):
        return None

    async def update_weights(self, weights, wire_format: str = "named_tensors", **kwargs):
        if wire_format != "named_tensors":
            raise NotImplementedError(f"the hf_cpu rollout receives full named tensors, not {wire_format!r}")
        state = {}
        for name, tensor in weights:  # every rank drains: full_tensor() of an FSDP2 shard is a collective
            if self.is_leader:
                state[name] = tensor.detach().to("cpu", copy=True)
        if self.is_leader:
            await self._server_handle().load_weights.remote(state, kwargs.get("global_steps"))
