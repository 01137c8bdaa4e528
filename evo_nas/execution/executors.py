"""Where ground-truth evaluations run: in process, local processes, Dask or Ray.

An executor only submits work and reports what finished; retries and time limits are handled
above it (:class:`evo_nas.execution.evaluation.Dispatcher`), the same way for every backend.
Dask and Ray are optional extras (``pip install evo-nas[dask]`` / ``[ray]``).
"""

from __future__ import annotations

import abc
import concurrent.futures as cf
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from evo_nas.config.errors import ConfigError
from evo_nas.config.schema import ExecutionSection


class WorkerLost(RuntimeError):
    """The worker running an evaluation died or was cut off; the evaluation may be retried."""


class Executor(abc.ABC):
    """Submit evaluations, learn which finished, fetch their outcome."""

    workers: int = 1

    def share(self, obj: Any) -> Any:
        """A handle to pass ``obj`` to every task cheaply (sent once, where possible)."""
        return obj

    @abc.abstractmethod
    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Start ``fn(*args)``; returns a handle."""

    @abc.abstractmethod
    def wait(self, handles: Iterable[Any], timeout: float) -> list[Any]:
        """The handles among ``handles`` that have finished, waiting up to ``timeout`` s."""

    @abc.abstractmethod
    def outcome(self, handle: Any) -> Any:
        """The finished task's return value; raises :class:`WorkerLost` if its worker died."""

    def cancel(self, handle: Any) -> None:  # noqa: B027 - nothing to stop by default
        """Stop waiting for a task (and stop it where the backend can)."""

    def close(self) -> None:  # noqa: B027 - nothing to release by default
        """Release the workers."""


class InlineExecutor(Executor):
    """Runs each evaluation in this process at submission: one worker, no pickling."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future:
        fut: cf.Future = cf.Future()
        fut.set_result(fn(*args))
        return fut

    def wait(self, handles: Iterable[Any], timeout: float) -> list[Any]:
        return list(handles)

    def outcome(self, handle: cf.Future) -> Any:
        return handle.result()


_SHARED: dict[str, Any] = {}


@dataclass(frozen=True)
class SharedRef:
    """Stands for an object installed once in each local worker (see LocalExecutor.share)."""

    token: str

    def get(self) -> Any:
        return _SHARED[self.token]


def _install_shared(token: str, obj: Any) -> None:
    _SHARED[token] = obj


def resolve_shared(obj: Any) -> Any:
    """The object a task argument stands for (itself unless it is a SharedRef)."""
    return obj.get() if isinstance(obj, SharedRef) else obj


class LocalExecutor(Executor):
    """Local worker processes through joblib's loky (restarted if a worker dies).

    A shared object (the ground truth) is sent once to each worker at its start, not with
    every task, so a large table or corpus costs nothing per evaluation.
    """

    def __init__(self, workers: int) -> None:
        from joblib.externals.loky import get_reusable_executor

        self.workers = workers
        self._get = get_reusable_executor
        self._init: tuple[Any, ...] = ()

    def share(self, obj: Any) -> SharedRef:
        ref = SharedRef(uuid.uuid4().hex)
        self._init = (ref.token, obj)
        return ref

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future:
        pool = self._get(
            max_workers=self.workers,
            reuse="auto",
            initializer=_install_shared if self._init else None,
            initargs=self._init,
        )
        return pool.submit(fn, *args)

    def wait(self, handles: Iterable[Any], timeout: float) -> list[Any]:
        done, _ = cf.wait(list(handles), timeout=timeout, return_when=cf.FIRST_COMPLETED)
        return list(done)

    def outcome(self, handle: cf.Future) -> Any:
        from joblib.externals.loky.process_executor import TerminatedWorkerError

        try:
            return handle.result()
        except (TerminatedWorkerError, cf.process.BrokenProcessPool, cf.CancelledError) as e:
            raise WorkerLost(f"{type(e).__name__}: {str(e).splitlines()[0][:200]}") from None

    def cancel(self, handle: cf.Future) -> None:
        handle.cancel()


class DaskExecutor(Executor):
    """A Dask distributed cluster: an existing scheduler, or a LocalCluster on 127.0.0.1."""

    def __init__(self, address: str | None, workers: int, gpus_per_task: float) -> None:
        try:
            import dask
            from distributed import Client, LocalCluster
        except ImportError:
            raise ConfigError(
                "execution.backend: dask is not installed (pip install evo-nas[dask])"
            ) from None
        self.gpus = gpus_per_task
        self._cluster = None
        if address is None:
            # our Dispatcher retries lost evaluations itself, and says so in the event log
            with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
                self._cluster = LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                    resources={"GPU": gpus_per_task} if gpus_per_task else None,
                )
                self.client = Client(self._cluster)
        else:
            try:
                self.client = Client(address, timeout=30)
            except (OSError, ValueError, TypeError) as e:
                raise ConfigError(f"execution.address: cannot reach {address} ({e})") from None
        self.workers = max(1, len(self.client.scheduler_info().get("workers", {})) or workers)

    def share(self, obj: Any) -> Any:
        return self.client.scatter(obj, broadcast=True)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        extra = {"resources": {"GPU": self.gpus}} if self.gpus else {}
        return self.client.submit(fn, *args, pure=False, **extra)

    def wait(self, handles: Iterable[Any], timeout: float) -> list[Any]:
        from distributed import wait

        handles = list(handles)
        try:
            wait(handles, timeout=timeout, return_when="FIRST_COMPLETED")
        except TimeoutError:
            pass
        return [h for h in handles if h.done()]

    def outcome(self, handle: Any) -> Any:
        from distributed.client import FutureCancelledError
        from distributed.scheduler import KilledWorker

        try:
            return handle.result()
        except (KilledWorker, FutureCancelledError, cf.CancelledError) as e:
            raise WorkerLost(f"{type(e).__name__}: {str(e).splitlines()[0][:200]}") from None
        except OSError as e:  # the scheduler connection is gone
            raise WorkerLost(f"lost the Dask scheduler: {e}") from None

    def cancel(self, handle: Any) -> None:
        handle.cancel()

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


class RayExecutor(Executor):
    """A Ray cluster: an existing one by address, or one started on this machine."""

    def __init__(self, address: str | None, workers: int, gpus_per_task: float) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError(
                "execution.backend: ray is not installed (pip install evo-nas[ray])"
            ) from None
        self.ray = ray
        if not ray.is_initialized():
            if address is None:
                ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=address, log_to_driver=False)
        self.workers = workers
        self.gpus = gpus_per_task
        self._remote: dict[Any, Any] = {}

    def share(self, obj: Any) -> Any:
        return self.ray.put(obj)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        if fn not in self._remote:
            self._remote[fn] = self.ray.remote(fn).options(
                num_cpus=1, num_gpus=self.gpus, max_retries=0
            )
        return self._remote[fn].remote(*args)

    def wait(self, handles: Iterable[Any], timeout: float) -> list[Any]:
        handles = list(handles)
        done, _ = self.ray.wait(handles, num_returns=1, timeout=timeout)
        if done:
            done, _ = self.ray.wait(handles, num_returns=len(handles), timeout=0)
        return list(done)

    def outcome(self, handle: Any) -> Any:
        from ray.exceptions import RayError, RayTaskError

        try:
            return self.ray.get(handle)
        except RayTaskError:
            raise
        except RayError as e:
            raise WorkerLost(f"{type(e).__name__}: {str(e).splitlines()[0][:200]}") from None

    def cancel(self, handle: Any) -> None:
        self.ray.cancel(handle, force=True)

    def close(self) -> None:
        self.ray.shutdown()


def make_executor(cfg: ExecutionSection) -> Executor:
    """The executor the ``execution`` section asks for."""
    if cfg.backend == "dask":
        return DaskExecutor(cfg.address, cfg.workers, cfg.gpus_per_task)
    if cfg.backend == "ray":
        return RayExecutor(cfg.address, cfg.workers, cfg.gpus_per_task)
    if cfg.workers == 1 and cfg.timeout_s is None:
        return InlineExecutor()  # (a time limit needs a worker process that can be stopped)
    return LocalExecutor(cfg.workers)
