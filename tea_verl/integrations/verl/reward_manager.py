"""``best_of_n``: a verl reward-loop manager for large-N best-of-N validation (and training).

Select it with ``reward.reward_manager.name=best_of_n``; settings live under ``reward.best_of_n``
(:class:`tea_verl.config.BestOfNConfig`, validated when verl builds the manager, before any
sample is scored).

Per sample it returns verl's ``reward_score`` (the proxy reward) and, in ``reward_extra_info``:

* ``bon_selection_score``: the score best-of-N selects by (the proxy reward);
* ``bon_gold_score``: the gold score from a second scorer, or ``None`` when the prompt does not
  carry what that scorer needs (a verifier without ``ground_truth``) or no gold is configured;
* ``bon_response_length``: valid response tokens;
* ``bon_data_source``: the sample's data source (verl's validation dump does not keep it);
* ``bon_unscored`` and ``bon_unscored_reason``: whether the sample could not be scored, and why.

The reward function's ``extra_info`` gains ``response_length`` (valid response tokens) and
``response_ended`` (the answer closed with the tokenizer's end token rather than being cut at
``max_response_length``), unless the dataset's own ``extra_info`` has those keys.

Throughput and failures. verl's reward-loop worker starts one task per sample at once; this
manager bounds the requests in flight per worker (``max_concurrency``), reuses one HTTP
connection pool, and retries transient failures (connection errors, timeouts, HTTP 429 and 5xx)
with exponential backoff and jitter. A sample that still cannot be scored (retries spent, a
permanent HTTP error, a scorer that raises or returns no number) is *unscored*: its reward is NaN,
``bon_unscored`` is true and ``bon_unscored_reason`` names the sample (uid, dataset index) and the
error; nothing is silently scored 0. The trainer applies the policy (:mod:`.validation`): a
validation leaves unscored samples out of best-of-k and stops above
``reward.best_of_n.max_unscored_share``; a training step stops at the first. Either stop saves a
checkpoint first and raises :class:`ScoringError`.

verl 0.9.1 routing: with ``reward.reward_model.enable=True`` verl's ``RewardLoopWorker`` calls a
reward manager only when ``reward.custom_reward_function.path`` is set (otherwise it queries the
reward model itself). To score with the reward model through this manager set
``reward.custom_reward_function.path=pkg://tea_verl.rewards`` and
``reward.custom_reward_function.name=reward_model_via_best_of_n``; construction refuses the
combination that would bypass the manager.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import random

from verl import DataProto
from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase

from tea_verl.config import BestOfNConfig, ConfigError

logger = logging.getLogger("tea_verl")

UNSCORED_LOGGED = 10  # unscored samples logged one by one per manager; the rest are counted

__all__ = ["BestOfNRewardManager", "ScoringError", "register"]


class ScoringError(RuntimeError):
    """A sample could not be scored (after retries where the failure was transient)."""


class _Permanent(Exception):
    """A failure a retry cannot fix (HTTP 4xx, malformed response)."""


def _is_transient(exc: BaseException) -> bool:
    import aiohttp

    if isinstance(exc, aiohttp.ClientResponseError):
        return exc.status == 429 or exc.status >= 500
    return isinstance(exc, (aiohttp.ClientConnectionError, asyncio.TimeoutError, ConnectionError, TimeoutError))


def _select(config, path: str):
    """``config``'s value at a dotted path; None when absent, null or '???' (unset)."""
    from omegaconf import OmegaConf

    return OmegaConf.select(config, path, throw_on_missing=False)


class BestOfNRewardManager(RewardManagerBase):
    """Proxy reward (+ optional gold score) per sample, with bounded concurrency and retries."""

    def __init__(self, config, tokenizer, compute_score, reward_router_address=None, reward_model_tokenizer=None):
        self.settings = BestOfNConfig.from_config(config)  # validate before anything else
        super().__init__(config, tokenizer, compute_score)
        self.reward_router_address = reward_router_address
        self.reward_model_tokenizer = reward_model_tokenizer
        s = self.settings
        proxy = s.proxy
        if proxy == "auto":
            proxy = "reward_model" if reward_router_address is not None else "function"
        self.proxy = proxy
        rm_enabled = bool(_select(config, "reward.reward_model.enable"))
        custom_path = _select(config, "reward.custom_reward_function.path")
        if rm_enabled and not custom_path:
            raise ConfigError(
                "reward.reward_model.enable=True without reward.custom_reward_function.path: verl 0.9.1 then scores "
                "with the reward model directly and never calls the best_of_n manager. Set "
                "reward.custom_reward_function.path=pkg://tea_verl.rewards "
                "reward.custom_reward_function.name=reward_model_via_best_of_n."
            )
        if proxy == "reward_model":
            if reward_router_address is None or reward_model_tokenizer is None:
                raise ConfigError(
                    "reward.best_of_n.proxy=reward_model needs verl's reward router: set reward.reward_model.enable=True "
                    "and reward.reward_model.model_path (or use proxy=function with a reward function)."
                )
            engine = _select(config, "reward.reward_model.rollout.name")
            self.rm_engine = "vllm" if engine is None else str(engine)
            if self.rm_engine not in ("vllm", "sglang"):
                raise ConfigError(
                    f"reward.reward_model.rollout.name={self.rm_engine!r}: the best_of_n manager queries vllm "
                    "(/classify) or sglang (/v1/embeddings) reward servers."
                )
            self.rm_model = _select(config, "reward.reward_model.model_path")
        elif compute_score is None:
            from verl.utils.reward_score import default_compute_score

            self.compute_score = default_compute_score
        self._is_async_fn = inspect.iscoroutinefunction(self.compute_score)
        self.gold_fn = None
        self.gold_tokenizer = None
        if s.gold == "function":
            from verl.utils.import_utils import load_extern_object

            try:
                self.gold_fn = load_extern_object(s.gold_function_path, s.gold_function_name)
            except (FileNotFoundError, AttributeError, ImportError, RuntimeError) as exc:
                raise ConfigError(
                    f"reward.best_of_n.gold_function_path={s.gold_function_path!r}, name={s.gold_function_name!r} "
                    f"cannot be loaded: {exc}"
                ) from exc
        elif s.gold == "endpoint":
            from verl.utils import hf_tokenizer

            try:
                self.gold_tokenizer = hf_tokenizer(s.gold_tokenizer_path, trust_remote_code=True)
            except Exception as exc:  # noqa: BLE001 - re-raised with the key named
                raise ConfigError(
                    f"reward.best_of_n.gold_tokenizer_path={s.gold_tokenizer_path!r} cannot be loaded: {exc}"
                ) from exc
        self._sem: asyncio.Semaphore | None = None
        self._admit: asyncio.Semaphore | None = None
        self._session = None
        self._session_loop = None
        self.stats = {"requests": 0, "retries": 0, "unscored": 0}
        self._warned_bare = False

    # ------------------------------------------------------------------------------------------
    # concurrency and retries
    # ------------------------------------------------------------------------------------------
    def _pool(self):
        import aiohttp

        loop = asyncio.get_running_loop()
        if self._session is None or self._session_loop is not loop or self._session.closed:
            self._sem = asyncio.Semaphore(self.settings.max_concurrency)
            # samples admitted to preparation (decode, chat template) at once: verl starts every
            # sample's task together, and preparing them all before the first request goes out
            # would stall the pipeline; twice the request bound keeps the next requests ready
            self._admit = asyncio.Semaphore(2 * self.settings.max_concurrency)
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.settings.max_concurrency),
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout_s),
            )
            self._session_loop = loop
        return self._session, self._sem

    async def close(self) -> None:
        """Close the HTTP connection pool (tests and benchmarks; verl keeps managers for the run)."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def _with_retries(self, what: str, sample: str, call):
        s = self.settings
        attempt = 0
        while True:
            self.stats["requests"] += 1
            try:
                return await call()
            except _Permanent as exc:
                raise ScoringError(f"best_of_n could not score {sample}: {what}: {exc} (not retried)") from exc
            except Exception as exc:  # noqa: BLE001 - classified below, never swallowed
                if not _is_transient(exc):
                    raise ScoringError(f"best_of_n could not score {sample}: {what} raised {type(exc).__name__}: {exc}") from exc
                if attempt >= s.max_retries:
                    raise ScoringError(
                        f"best_of_n could not score {sample}: {what} failed {attempt + 1} times "
                        f"(last: {type(exc).__name__}: {exc}). Raise reward.best_of_n.max_retries or timeout_s, "
                        "or check the scoring server."
                    ) from exc
                delay = min(s.backoff_max_s, s.backoff_s * 2**attempt) * random.uniform(0.5, 1.5)
                logger.warning("best_of_n: %s for %s failed (%s); retry %d in %.2fs", what, sample, exc, attempt + 1, delay)
                self.stats["retries"] += 1
                attempt += 1
                await asyncio.sleep(delay)

    async def _post_classify(self, address: str, payload: dict, engine: str) -> float:
        import aiohttp

        session, sem = self._pool()
        endpoint = "classify" if engine == "vllm" else "v1/embeddings"
        async with sem:
            async with session.post(f"http://{address}/{endpoint}", json=payload) as resp:
                if 400 <= resp.status < 500 and resp.status != 429:
                    text = (await resp.text())[:200]
                    raise _Permanent(f"HTTP {resp.status} from {address}/{endpoint}: {text}")
                resp.raise_for_status()
                try:
                    out = await resp.json(content_type=None)
                except (ValueError, aiohttp.ContentTypeError) as exc:
                    raise _Permanent(f"response of {address}/{endpoint} is not JSON: {exc}") from exc
        try:
            item = out["data"][-1]
            score = item["probs"][-1] if engine == "vllm" else item["embedding"][-1]
            return float(score)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise _Permanent(f"unexpected response shape from {address}/{endpoint}: {str(out)[:200]}") from exc

    # ------------------------------------------------------------------------------------------
    # scoring
    # ------------------------------------------------------------------------------------------
    def _chat_input(self, nt: dict, response_text: str, tokenizer) -> str:
        """The reward-model input exactly as verl's RewardLoopWorker builds it."""
        chat = list(nt["raw_prompt"])
        chat.append({"role": "assistant", "content": response_text})
        text = tokenizer.apply_chat_template(chat, add_generation_prompt=False, tokenize=False)
        if tokenizer.bos_token is not None and text.startswith(tokenizer.bos_token):
            text = text[len(tokenizer.bos_token) :]
        return text

    async def _call_function(self, fn, is_async: bool, **kwargs):
        if is_async:
            return await fn(**kwargs)
        return await asyncio.get_running_loop().run_in_executor(None, lambda: fn(**kwargs))

    async def run_single(self, data: DataProto) -> dict:
        self._pool()
        async with self._admit:
            return await self._score(data)

    async def _score(self, data: DataProto) -> dict:
        c = self._context(data)
        s = self.settings
        needs_text = self.proxy == "function" or s.gold != "none"
        c["response_str"] = self.tokenizer.decode(c["valid_ids"], skip_special_tokens=True) if needs_text else None
        c["fn_kwargs"] = dict(data_source=c["data_source"], solution_str=c["response_str"], ground_truth=c["ground_truth"],
                              extra_info=c["extra_info"])
        try:
            proxy, result_extra = await self._proxy(c)
            gold = await self._gold(c)
        except ScoringError as exc:
            return self._unscored(c, exc)
        return {"reward_score": proxy, "reward_extra_info": {**result_extra, **self._info(c, proxy, gold)}}

    @staticmethod
    def _info(c: dict, selection: float, gold: float | None, unscored: str | None = None) -> dict:
        """The ``bon_*`` keys of one sample's ``reward_extra_info``; ``unscored``: why it is unscored."""
        return {
            "bon_selection_score": selection,
            "bon_gold_score": gold,
            "bon_response_length": c["valid_len"],
            "bon_data_source": str(c["data_source"]),
            "bon_unscored": unscored is not None,
            "bon_unscored_reason": unscored,
        }

    def _unscored(self, c: dict, exc: ScoringError) -> dict:
        """A sample whose proxy or gold scorer still failed after the retries (or raised): its reward
        is NaN and ``bon_unscored`` names why. The trainer (:mod:`.validation`) counts these, leaves them
        out of the best-of-k estimates and stops per ``reward.best_of_n.max_unscored_share``; nothing
        downstream may read the NaN as a score."""
        self.stats["unscored"] += 1
        if self.stats["unscored"] <= UNSCORED_LOGGED:
            more = "; further unscored samples are counted, not logged" if self.stats["unscored"] == UNSCORED_LOGGED else ""
            logger.warning("best_of_n: %s: the sample is left unscored%s", exc, more)
        return {"reward_score": math.nan, "reward_extra_info": self._info(c, math.nan, None, unscored=str(exc))}

    def _context(self, data: DataProto) -> dict:
        """What scoring one sample needs: its response tokens and length, its dataset fields, the
        reward function's ``extra_info`` (with ``response_length`` and ``response_ended``) and a name
        for error messages."""
        # multi-output sessions: the last output carries the reward (as in verl). Read the fields of
        # the last row directly: building a DataProtoItem indexes every tensor of the batch
        last = len(data) - 1
        response_ids = data.batch["responses"][last]
        valid_len = int(data.batch["attention_mask"][last, -response_ids.shape[-1] :].sum())
        valid_ids = response_ids[:valid_len]
        nt = {key: values[last] for key, values in data.non_tensor_batch.items()}
        if "reward_model" not in nt and self.settings.gold == "function" and not self._warned_bare:
            # verl 0.9.1's colocated reward-model path (reward.reward_model.enable_resource_pool=false)
            # hands the manager only prompts, responses and the chat: no ground truth, no data source
            self._warned_bare = True
            logger.warning(
                "best_of_n: samples arrive without their dataset fields (reward_model, data_source, extra_info), as "
                "in verl's colocated reward-model path; the gold verifier needs reward_model.ground_truth, so gold "
                "scores are unavailable here. Set reward.reward_model.enable_resource_pool=true (the reward loop then "
                "runs beside the rollout and sees every field)."
            )
        data_source = nt.get("data_source", "unknown")
        reward_model = nt.get("reward_model") or {}
        ground_truth = reward_model.get("ground_truth") if hasattr(reward_model, "get") else None
        extra_info = dict(nt.get("extra_info") or {})
        # what a reward function cannot see in the decoded text: the answer's length in tokens, and
        # whether it closed with the end token or was cut at max_response_length (a user's own keys win)
        eos = getattr(self.tokenizer, "eos_token_id", None)
        extra_info.setdefault("response_length", valid_len)
        extra_info.setdefault("response_ended", bool(valid_len) and eos is not None and int(valid_ids[-1]) == int(eos))
        sample = f"sample uid={nt.get('uid', '?')} index={extra_info.get('index', '?')} (data_source={data_source})"
        return {"nt": nt, "valid_ids": valid_ids, "valid_len": valid_len, "data_source": data_source,
                "ground_truth": ground_truth, "extra_info": extra_info, "sample": sample}

    async def _proxy(self, c: dict) -> tuple[float, dict]:
        """The proxy score (the reward model's or the reward function's), and the function's extra keys."""
        nt, valid_ids, sample, fn_kwargs = c["nt"], c["valid_ids"], c["sample"], c["fn_kwargs"]
        result_extra: dict = {}
        if self.proxy == "reward_model":
            raw = self.tokenizer.decode(valid_ids)
            if self.tokenizer.eos_token:
                raw = raw.replace(self.tokenizer.eos_token, "")
            payload = {"model": self.rm_model, "input": self._chat_input(nt, raw, self.reward_model_tokenizer)}
            if self.rm_engine == "vllm":
                payload["use_activation"] = False
            proxy = await self._with_retries(
                "the reward model", sample, lambda: self._post_classify(self.reward_router_address, payload, self.rm_engine)
            )
        else:
            extra = (
                {"reward_router_address": self.reward_router_address, "reward_model_tokenizer": self.reward_model_tokenizer}
                if self.reward_router_address is not None
                else {}
            )

            async def call_proxy():
                _, sem = self._pool()
                async with sem:
                    return await self._call_function(self.compute_score, self._is_async_fn, **fn_kwargs, **extra)

            result = await self._with_retries("the reward function", sample, call_proxy)
            if isinstance(result, dict):
                if "score" not in result:
                    raise ScoringError(f"best_of_n could not score {sample}: the reward function returned a dict without 'score'")
                proxy = result["score"]
                result_extra = {k: v for k, v in result.items() if k != "score"}
            else:
                proxy = result
        try:
            proxy = float(proxy)
        except (TypeError, ValueError):
            raise ScoringError(f"best_of_n could not score {sample}: the proxy score {proxy!r} is not a number") from None
        return proxy, result_extra

    async def _gold(self, c: dict) -> float | None:
        """The gold score from the verifier function or the gold endpoint, or None."""
        s = self.settings
        nt, sample, fn_kwargs, ground_truth = c["nt"], c["sample"], c["fn_kwargs"], c["ground_truth"]
        gold = None
        if s.gold == "function" and ground_truth is not None:
            async def call_gold():
                _, sem = self._pool()
                async with sem:
                    return await self._call_function(self.gold_fn, inspect.iscoroutinefunction(self.gold_fn), **fn_kwargs)

            g = await self._with_retries("the gold verifier", sample, call_gold)
            try:
                gold = float(g["score"] if isinstance(g, dict) else g)
            except (KeyError, TypeError, ValueError):
                raise ScoringError(f"best_of_n could not score {sample}: the gold verifier returned {g!r}, not a number") from None
        elif s.gold == "endpoint" and "raw_prompt" in nt:
            payload = {"model": s.gold_model, "input": self._chat_input(nt, c["response_str"], self.gold_tokenizer), "use_activation": False}
            gold = await self._with_retries("the gold endpoint", sample, lambda: self._post_classify(s.gold_endpoint, payload, "vllm"))
        return gold


def register() -> None:
    """Register ``best_of_n`` in verl's reward-loop registry. Idempotent."""
    from verl.experimental.reward_loop.reward_manager.registry import REWARD_MANAGER, register as _register

    held = REWARD_MANAGER.get("best_of_n")
    if held is BestOfNRewardManager:
        return
    if held is not None and getattr(held, "__module__", None) == __name__:  # an earlier import of this module
        REWARD_MANAGER["best_of_n"] = BestOfNRewardManager
        return
    _register("best_of_n")(BestOfNRewardManager)
