"""Engines: where a run's independent evaluations go — this process, or Ray tasks.

`archc search` and `archc sweep --cost-only` cut their points into shards
and map one pure, module-level function over them: `fn(context, shard)`.
The context (a composed base, a design space) is pickled once per run and
unpickled once per worker, not once per shard. Results come back in shard
order whatever ran them, and the caller folds them in exactly as it folds
its own, so every engine gives the same rows in the same order: the
workers run the very code a local run does.

On Ray at most two shards per CPU of the cluster are in flight, so a
caller that stops early (search's --keep) wastes at most that much work.

    local      in this process, one shard at a time (the default)
    ray        Ray tasks on a cluster: --address joins a running one
               (`ray start --head` prints it; "auto" finds a local one),
               else a Ray instance is started on this machine for the run.
               Its nodes need the same archdsl installed (and a config's
               own spec files at the same paths).
"""
from __future__ import annotations

import gc
import logging
import os
import pickle
import socket
import uuid
from collections import deque
from typing import Any, Callable, Iterable, Iterator

from archdsl.language import errors
from archdsl.language.errors import ConfigError

ENGINES = ("local", "ray")

# Object store of a Ray instance started for one run: shards and results are
# small (KBs to a few MB), and Ray's default takes 30% of the machine's memory.
LOCAL_OBJECT_STORE = 100 * 1024 * 1024

# Each worker process keeps the contexts it has unpickled, by the run's token.
_CONTEXTS: dict[str, Any] = {}


def _context(token: str, payload: list) -> Any:
    ctx = _CONTEXTS.get(token)
    if ctx is None:
        import ray

        # [ObjectRef]: in a list, so that Ray hands the task the reference, not the object
        ctx, sources = pickle.loads(ray.get(payload[0]))
        # Errors quote spec lines from the parser's sources; this process got its programs
        # by pickle, without parsing them, so it takes the sources along.
        errors.SOURCES.update(sources)
        _CONTEXTS[token] = ctx
        while len(_CONTEXTS) > 4:  # a long-lived worker serves many runs
            del _CONTEXTS[next(iter(_CONTEXTS))]
    return ctx


def run_shard(fn: Callable, context: Any, shard: Any) -> Any:
    """fn(context, shard) with Python's cycle collector paused until it returns.

    A shard compiles thousands of configs. Their IR and the memos that keep it
    hold no reference cycles (reference counts free them), yet each object
    kept counts toward the collector's next pass, and each full pass walks
    every memo: on random design-space points that was a fifth to a third of
    the time. Paused, it runs about once per shard, from where counts
    resume; whatever cycles a shard leaves are collected then."""
    if not gc.isenabled():
        return fn(context, shard)
    gc.disable()
    try:
        return fn(context, shard)
    finally:
        gc.enable()


def _call(fn: Callable, token: str, payload: list, shard: Any) -> Any:
    """What a Ray task runs for one shard."""
    return run_shard(fn, _context(token, payload), shard)


class Engine:
    """The local engine: fn runs here, on one shard at a time."""

    name = "local"
    workers = 1

    def map(self, fn: Callable[[Any, Any], Any], context: Any, shards: Iterable) -> Iterator:
        """fn(context, shard) for each shard, in order, lazily."""
        for shard in shards:
            yield run_shard(fn, context, shard)

    def close(self) -> None:
        pass

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Ray(Engine):
    """Ray tasks on the cluster this process joins or starts; results taken in shard order."""

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None):
        try:
            import ray
        except ImportError:
            raise ConfigError("--engine ray needs Ray, which is not installed",
                              hint="pip install 'archdsl[ray]'") from None
        if address:
            _check_reachable(address)
        self.ray = ray
        self.started = not ray.is_initialized()
        if self.started:
            os.environ.setdefault("RAY_DEDUP_LOGS", "0")
            kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True,
                                  "logging_level": logging.WARNING, "configure_logging": True}
            if address:
                kw["address"] = address
            else:  # a Ray instance of our own, for this run only
                kw.update(num_cpus=workers or os.cpu_count() or 1, object_store_memory=LOCAL_OBJECT_STORE)
            try:
                ray.init(**kw)
            except (ConnectionError, RuntimeError, ValueError) as e:  # no cluster, or not let in
                if not address:
                    raise ConfigError(f"--engine ray: could not start Ray on this machine ({e})") from None
                raise ConfigError(f"--address {address}: cannot join a Ray cluster there ({e})",
                                  hint="a cluster with token authentication wants RAY_AUTH_MODE=token and "
                                  "its token (ray get-auth-token)") from None
        self.workers = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        self.task = ray.remote(num_cpus=1, max_retries=0)(_call)

    def map(self, fn, context, shards):
        token = uuid.uuid4().hex
        blob = pickle.dumps((context, dict(errors.SOURCES)), protocol=pickle.HIGHEST_PROTOCOL)
        payload = [self.ray.put(blob)]
        pending: deque = deque()
        try:
            for shard in shards:
                pending.append(self.task.remote(fn, token, payload, shard))
                if len(pending) >= 2 * self.workers:
                    yield self._result(pending.popleft())
            while pending:
                yield self._result(pending.popleft())
        finally:  # stopped early: drop what is still queued
            for h in pending:
                self.ray.cancel(h)

    def _result(self, handle):
        try:
            return self.ray.get(handle)
        except self.ray.exceptions.RayTaskError as e:  # the worker's own exception, as a local run raises it
            cause = e.as_instanceof_cause()
            raise cause from None

    def close(self):
        if self.started:  # a cluster we only joined keeps running
            self.ray.shutdown()


def _check_reachable(address: str) -> None:
    """A host:port that does not answer is an error now: Ray itself retries for minutes."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():  # "auto", "local": Ray looks for them itself
        return
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        raise ConfigError(f"--address {address}: no Ray cluster answers there ({e.strerror or e})",
                          hint="`ray start --head` prints the address; 'auto' finds a local one") from None


def open_engine(name: str = "local", address: str | None = None, workers: int | None = None) -> Engine:
    """The engine named on the command line (`--engine`, `--address`).

    `workers`: the CPUs of a Ray instance started here (default: every core).
    """
    if name not in ENGINES:
        raise ConfigError(f"--engine {name}: no such engine", hint=f"engines: {', '.join(ENGINES)}")
    if address and name != "ray":
        raise ConfigError(f"--address {address}: only --engine ray joins a cluster")
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers {workers}: must be >= 1")
    if name == "ray":
        return Ray(address, workers)
    return Engine()
