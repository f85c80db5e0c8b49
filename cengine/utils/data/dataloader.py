"""DataLoader (torch.utils.data.DataLoader): batches from a dataset, in the main process or in
worker processes.

Workers are started as torch starts them: by fork on Linux (the default multiprocessing_context
there), so the dataset, collate_fn and worker_init_fn need not be picklable: classes defined in
a script's __main__, inside functions or in a notebook, and lambdas, all work. A forked child
of a process whose OpenMP runtime holds threads would hang in its first multi-threaded parallel
region; cengine sets its kernel thread count to 1 in every forked child, before any Python code
runs there (cengine/_config.py), and every kernel passes that count to its parallel region, so
a worker never wakes the parent's thread pool. Elsewhere (and when asked with
multiprocessing_context='forkserver' or 'spawn') workers are new processes that receive the
dataset by pickle. Each worker gets an index queue; results come back on one queue and are
reordered, so batches arrive in sampler order whatever the number of workers.
"""
import itertools
import math
import multiprocessing
import os
import pickle
import queue
import sys
import time
import warnings

from . import _worker as _W
from ._collate import default_collate, default_convert
from ._worker import (_DatasetKind, _IterableDatasetStopIteration, _ResumeIteration,
                      ExceptionWrapper)
from .dataset import IterableDataset
from .sampler import Sampler, SequentialSampler, RandomSampler, BatchSampler

__all__ = ["DataLoader", "get_worker_info"]

get_worker_info = _W.get_worker_info

# how often (s) the main process checks that the workers are still alive while it waits
_LIVENESS_CHECK_INTERVAL = 0.2
# how long (s), in all, a shutdown after an error waits for the workers before terminating them
_QUICK_JOIN = 0.3


_forkserver_checked = False


def _default_mp_context():
    """'fork' on Linux (as torch, whose workers are forked there); elsewhere 'forkserver' where
    available, else 'spawn'.

    The fork server must never hold an OpenMP thread pool, or its forked workers deadlock in
    their first parallel region. Its default preload list is ['__main__'], which (in Python
    versions where that preload takes effect) runs the user's script in the server, including
    any module-level compute. So, once, if the server is not running yet and nobody changed the
    list, it is emptied: every worker then imports the main module itself, as with 'spawn'."""
    global _forkserver_checked
    methods = multiprocessing.get_all_start_methods()
    if sys.platform.startswith("linux") and "fork" in methods:
        return multiprocessing.get_context("fork")
    if "forkserver" not in methods:
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    if not _forkserver_checked:
        _forkserver_checked = True
        try:
            from multiprocessing import forkserver as _fs
            srv = _fs._forkserver
            if srv._forkserver_pid is None and list(srv._preload_modules) == ["__main__"]:
                ctx.set_forkserver_preload([])
        except Exception:  # private layout changed: keep Python's default
            pass
    return ctx


class _InfiniteConstantSampler(Sampler):
    """For IterableDataset: yields None forever (the dataset decides when to stop)."""

    def __iter__(self):
        while True:
            yield None


class DataLoader:
    """Combines a dataset and a sampler and iterates over batches.

    Arguments and semantics follow torch.utils.data.DataLoader: batch_size=1, shuffle=None,
    sampler, batch_sampler, num_workers=0, collate_fn (default_collate when batching,
    default_convert when batch_size=None), pin_memory (accepted; no-op on the CPU),
    drop_last, timeout, worker_init_fn, multiprocessing_context, generator (a
    cengine.Generator for the shuffling order and worker seeds), prefetch_factor (batches
    loaded in advance per worker, default 2 with workers), persistent_workers.

    With num_workers > 0 on Linux the workers are forked from this process (as torch's), so
    the dataset, collate_fn and worker_init_fn can be anything: classes from __main__, local
    classes, lambdas, notebook cells. With multiprocessing_context='forkserver' or 'spawn'
    (and on other platforms) they are pickled to new processes instead, so they must be
    module-level classes and functions and a script must start the loop under
    `if __name__ == "__main__":`. Each worker runs with one compute thread (a forked worker
    cannot use more: see set_num_threads) and is seeded with base_seed + worker_id (cengine,
    numpy and random), base_seed being drawn from `generator` (or cengine's default
    generator) for every epoch."""

    _iterator = None
    __initialized = False

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None,
                 num_workers=0, collate_fn=None, pin_memory=False, drop_last=False, timeout=0,
                 worker_init_fn=None, multiprocessing_context=None, generator=None, *,
                 prefetch_factor=None, persistent_workers=False, pin_memory_device="",
                 in_order=True):
        if num_workers < 0:
            raise ValueError("num_workers option should be non-negative; use num_workers=0 to "
                             "disable multiprocessing.")
        if timeout < 0:
            raise ValueError("timeout option should be non-negative")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError("prefetch_factor option could only be specified in "
                             "multiprocessing.let num_workers > 0 to enable multiprocessing, "
                             "otherwise set prefetch_factor to None.")
        elif num_workers > 0 and prefetch_factor is None:
            prefetch_factor = 2
        elif prefetch_factor is not None and prefetch_factor < 0:
            raise ValueError("prefetch_factor option should be non-negative")
        if persistent_workers and num_workers == 0:
            raise ValueError("persistent_workers option needs num_workers > 0")

        self.dataset = dataset
        self.num_workers = num_workers
        self.prefetch_factor = prefetch_factor
        self.pin_memory = pin_memory
        self.pin_memory_device = pin_memory_device
        # in_order=False lets torch hand out batches as workers finish them; batches here always
        # arrive in sampler order, which that setting permits
        self.in_order = in_order
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn

        if isinstance(dataset, IterableDataset):
            self._dataset_kind = _DatasetKind.Iterable
            if shuffle not in {False, None}:
                raise ValueError("DataLoader with IterableDataset: expected unspecified shuffle "
                                 "option, but got shuffle={}".format(shuffle))
            elif sampler is not None:
                raise ValueError("DataLoader with IterableDataset: expected unspecified sampler "
                                 "option, but got sampler={}".format(sampler))
            elif batch_sampler is not None:
                raise ValueError("DataLoader with IterableDataset: expected unspecified "
                                 "batch_sampler option, but got batch_sampler={}"
                                 .format(batch_sampler))
        else:
            shuffle = bool(shuffle)
            self._dataset_kind = _DatasetKind.Map

        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")

        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, "
                                 "shuffle, sampler, and drop_last")
            batch_size = None
            drop_last = False
        elif batch_size is None:
            if drop_last:
                raise ValueError("batch_size=None option disables auto-batching and is mutually "
                                 "exclusive with drop_last")

        if sampler is None:
            if self._dataset_kind == _DatasetKind.Iterable:
                sampler = _InfiniteConstantSampler()
            elif shuffle:
                sampler = RandomSampler(dataset, generator=generator)
            else:
                sampler = SequentialSampler(dataset)

        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)

        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.generator = generator

        if collate_fn is None:
            collate_fn = default_collate if self._auto_collation else default_convert
        self.collate_fn = collate_fn
        self.persistent_workers = persistent_workers
        self.multiprocessing_context = multiprocessing_context

        self.__initialized = True
        self._IterableDataset_len_called = None

    # -------------------------------------------------------------------- properties
    @property
    def multiprocessing_context(self):
        return self.__multiprocessing_context

    @multiprocessing_context.setter
    def multiprocessing_context(self, multiprocessing_context):
        if multiprocessing_context is not None:
            if self.num_workers > 0:
                if isinstance(multiprocessing_context, str):
                    valid = multiprocessing.get_all_start_methods()
                    if multiprocessing_context not in valid:
                        raise ValueError("multiprocessing_context option should specify a valid "
                                         "start method in {!r}, but got "
                                         "multiprocessing_context={!r}"
                                         .format(valid, multiprocessing_context))
                    multiprocessing_context = multiprocessing.get_context(
                        multiprocessing_context)
                if not isinstance(multiprocessing_context,
                                  multiprocessing.context.BaseContext):
                    raise TypeError("multiprocessing_context option should be a valid context "
                                    "object or a string specifying the start method, but got "
                                    "multiprocessing_context={}".format(multiprocessing_context))
            else:
                raise ValueError("multiprocessing_context can only be used with multi-process "
                                 "loading (num_workers > 0), but got num_workers={}"
                                 .format(self.num_workers))
        self.__multiprocessing_context = multiprocessing_context

    def __setattr__(self, attr, val):
        if self.__initialized and attr in ("batch_size", "batch_sampler", "sampler", "drop_last",
                                           "dataset", "persistent_workers"):
            raise ValueError("{} attribute should not be set after {} is initialized"
                             .format(attr, self.__class__.__name__))
        super().__setattr__(attr, val)

    @property
    def _auto_collation(self):
        return self.batch_sampler is not None

    @property
    def _index_sampler(self):
        return self.batch_sampler if self._auto_collation else self.sampler

    # -------------------------------------------------------------------- iteration
    def _get_iterator(self):
        if self.num_workers == 0:
            return _SingleProcessDataLoaderIter(self)
        self.check_worker_number_rationality()
        return _MultiProcessingDataLoaderIter(self)

    def check_worker_number_rationality(self):
        """Warn when more workers are asked for than this process has CPUs."""
        try:
            cpus = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            cpus = os.cpu_count()
        if cpus and self.num_workers > cpus:
            warnings.warn("This DataLoader will create {} worker processes in total. Our "
                          "suggested max number of worker in current system is {}, which is "
                          "smaller than what this DataLoader is going to create. Please be "
                          "aware that excessive worker creation might get DataLoader running "
                          "slow or even freeze, lower the worker number to avoid potential "
                          "slowness/freeze if necessary.".format(self.num_workers, cpus))

    def __iter__(self):
        if self.persistent_workers and self.num_workers > 0:
            if self._iterator is None:
                self._iterator = self._get_iterator()
            else:
                self._iterator._reset(self)
            return self._iterator
        return self._get_iterator()

    def __len__(self):
        if self._dataset_kind == _DatasetKind.Iterable:
            length = len(self.dataset)
            if self.batch_size is not None:
                if self.drop_last:
                    length = length // self.batch_size
                else:
                    length = math.ceil(length / self.batch_size)
            # the iterator warns when it yields more batches than this
            self._IterableDataset_len_called = length
            return length
        return len(self._index_sampler)


class _BaseDataLoaderIter:
    def __init__(self, loader):
        self._dataset = loader.dataset
        self._shared_seed = None
        self._dataset_kind = loader._dataset_kind
        self._IterableDataset_len_called = loader._IterableDataset_len_called
        self._auto_collation = loader._auto_collation
        self._drop_last = loader.drop_last
        self._index_sampler = loader._index_sampler
        self._num_workers = loader.num_workers
        self._prefetch_factor = loader.prefetch_factor
        self._timeout = loader.timeout
        self._collate_fn = loader.collate_fn
        self._sampler_iter = iter(self._index_sampler)
        self._base_seed = _draw_seed(loader.generator)
        self._persistent_workers = loader.persistent_workers
        self._num_yielded = 0

    def __iter__(self):
        return self

    def _reset(self, loader, first_iter=False):
        self._sampler_iter = iter(self._index_sampler)
        self._num_yielded = 0
        self._IterableDataset_len_called = loader._IterableDataset_len_called

    def _next_index(self):
        return next(self._sampler_iter)

    def _next_data(self):
        raise NotImplementedError

    def __next__(self):
        data = self._next_data()
        self._num_yielded += 1
        if self._dataset_kind == _DatasetKind.Iterable and \
                self._IterableDataset_len_called is not None and \
                self._num_yielded > self._IterableDataset_len_called:
            warn_msg = ("Length of IterableDataset {} was reported to be {} (when accessing "
                        "len(dataloader)), but {} batches have been fetched. "
                        .format(self._dataset, self._IterableDataset_len_called,
                                self._num_yielded))
            if self._num_workers > 0:
                warn_msg += ("For multiprocessing data-loading, this could be caused by not "
                             "properly configuring the IterableDataset replica at each worker.")
            warnings.warn(warn_msg)
        return data

    def __len__(self):
        return len(self._index_sampler)

    def __getstate__(self):
        raise NotImplementedError("{} cannot be pickled".format(self.__class__.__name__))


def _draw_seed(generator):
    from ...random import default_generator
    g = generator if generator is not None else default_generator
    return int(g._rng.integers(0, 2 ** 63 - 1))


class _SingleProcessDataLoaderIter(_BaseDataLoaderIter):
    def __init__(self, loader):
        super().__init__(loader)
        assert self._timeout == 0
        assert self._num_workers == 0
        self._dataset_fetcher = _DatasetKind.create_fetcher(
            self._dataset_kind, self._dataset, self._auto_collation, self._collate_fn,
            self._drop_last)

    def _next_data(self):
        index = self._next_index()  # may raise StopIteration
        return self._dataset_fetcher.fetch(index)  # may raise StopIteration


class _MultiProcessingDataLoaderIter(_BaseDataLoaderIter):
    """Worker processes, one index queue each, one shared result queue; results are put back
    in order with a dictionary of outstanding tasks (as torch does)."""

    def __init__(self, loader):
        super().__init__(loader)
        self._shutdown = True  # until the workers exist
        self._failed = False  # shut down after a timeout or a dead worker
        self._prefetch_factor = loader.prefetch_factor
        assert self._num_workers > 0
        assert self._prefetch_factor > 0
        ctx = loader.multiprocessing_context or _default_mp_context()
        self._worker_init_fn = loader.worker_init_fn
        self._worker_result_queue = _W._ResultQueue(ctx)
        self._workers_done_event = ctx.Event()
        self._index_queues = []
        self._workers = []
        self._worker_pids = []
        try:
            for i in range(self._num_workers):
                index_queue = ctx.Queue()
                index_queue.cancel_join_thread()
                w = ctx.Process(
                    target=_W._worker_loop,
                    args=(self._dataset_kind, self._dataset, index_queue,
                          self._worker_result_queue, self._workers_done_event,
                          self._auto_collation, self._collate_fn, self._drop_last,
                          self._base_seed, self._worker_init_fn, i, self._num_workers,
                          self._persistent_workers))
                w.daemon = True
                w.start()
                self._index_queues.append(index_queue)
                self._workers.append(w)
                self._worker_pids.append(w.pid)
        except BaseException as e:
            self._shutdown = False
            self._shutdown_workers(wait=False)
            method = ctx.get_start_method()
            note = None
            if isinstance(e, (pickle.PicklingError, TypeError, AttributeError)):
                note = ("DataLoader workers are started with the {!r} method, which pickles the "
                        "dataset, collate_fn and worker_init_fn to each worker: they must be "
                        "picklable (defined at module level, not lambdas, local functions or "
                        "classes defined inside a function).".format(method))
                if "fork" in multiprocessing.get_all_start_methods() and method != "fork":
                    note += (" multiprocessing_context='fork' (the default on Linux) has no "
                             "such requirement.")
            elif isinstance(e, OSError):
                note = ("DataLoader could not start worker process {} of {} ({}): the system "
                        "refused a new process (out of memory or a process limit). Use fewer "
                        "workers (num_workers) or num_workers=0."
                        .format(len(self._workers), self._num_workers, e))
            if note is not None and hasattr(e, "add_note"):
                e.add_note(note)
            raise
        self._shutdown = False
        self._start_method = ctx.get_start_method()
        self._data_queue = self._worker_result_queue
        self._reset(loader, first_iter=True)

    def _reset(self, loader, first_iter=False):
        super()._reset(loader, first_iter)
        self._send_idx = 0
        self._rcvd_idx = 0
        self._task_info = {}
        self._tasks_outstanding = 0
        self._workers_status = [True for _ in range(self._num_workers)]
        self._worker_queue_idx_cycle = itertools.cycle(range(self._num_workers))
        if not first_iter:
            # persistent workers: tell each to start a new epoch and wait for the answers
            for idx in range(self._num_workers):
                self._index_queues[idx].put(_ResumeIteration(self._shared_seed))
            resume_iteration_cnt = self._num_workers
            while resume_iteration_cnt > 0:
                return_idx, return_data = self._get_data()
                if isinstance(return_idx, _ResumeIteration):
                    assert return_data is None
                    resume_iteration_cnt -= 1
        for _ in range(self._prefetch_factor * self._num_workers):
            self._try_put_index()

    # ------------------------------------------------------------------ receiving
    def _try_get_data(self, timeout):
        """(True, item) or (False, None) after `timeout` seconds; raises when a worker died."""
        try:
            return True, self._data_queue.get(timeout=timeout)
        except Exception as e:
            failed = [w for wid, w in enumerate(self._workers)
                      if self._workers_status[wid] and not w.is_alive()]
            if failed:
                pids = ", ".join(str(w.pid) for w in failed)
                codes = ", ".join(str(w.exitcode) for w in failed)
                self._failed = True
                self._shutdown_workers(wait=False)
                msg = ("DataLoader worker (pid(s) {}) exited unexpectedly (exit code(s) {}). A "
                       "worker's own error output, if it printed any, is above this traceback."
                       .format(pids, codes))
                if any(w.exitcode is not None and w.exitcode < 0 for w in failed):
                    msg += (" A negative exit code is the signal that ended the worker (-9: "
                            "SIGKILL, often the out-of-memory killer; try fewer workers or "
                            "a smaller prefetch_factor).")
                if getattr(self, "_start_method", "fork") != "fork":
                    msg += (" With the {!r} start method each worker imports the main module "
                            "again and unpickles the dataset: a script must start its loop "
                            "under `if __name__ == '__main__':`, and classes defined in a "
                            "notebook, an interactive session or inside a function cannot be "
                            "found there{}.".format(
                                self._start_method,
                                "; multiprocessing_context='fork' (the default on Linux) "
                                "avoids both" if "fork" in multiprocessing
                                .get_all_start_methods() else ""))
                raise RuntimeError(msg) from e
            if isinstance(e, queue.Empty):
                return False, None
            raise

    def _get_data(self):
        if self._timeout > 0:
            deadline = time.monotonic() + self._timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    # the workers are stuck in the dataset: stop them now rather than wait
                    # for them (an iterator that timed out cannot go on)
                    self._failed = True
                    self._shutdown_workers(wait=False)
                    raise RuntimeError("DataLoader timed out after {} seconds"
                                       .format(self._timeout))
                success, data = self._try_get_data(min(left, _LIVENESS_CHECK_INTERVAL))
                if success:
                    return data
        while True:
            success, data = self._try_get_data(_LIVENESS_CHECK_INTERVAL)
            if success:
                return data

    def _next_data(self):
        if self._failed:
            raise RuntimeError("this DataLoader iterator was shut down after an error (a "
                               "timeout or a worker that exited): start a new one with "
                               "iter(loader)")
        while True:
            # skip tasks sent to workers that have since finished their IterableDataset
            while self._rcvd_idx < self._send_idx:
                info = self._task_info[self._rcvd_idx]
                worker_id = info[0]
                if len(info) == 2 or self._workers_status[worker_id]:
                    break
                del self._task_info[self._rcvd_idx]
                self._rcvd_idx += 1
            else:
                if not self._persistent_workers:
                    self._shutdown_workers()
                raise StopIteration

            if len(self._task_info[self._rcvd_idx]) == 2:
                data = self._task_info.pop(self._rcvd_idx)[1]
                return self._process_data(data)

            assert not self._shutdown and self._tasks_outstanding > 0
            idx, data = self._get_data()
            self._tasks_outstanding -= 1
            if self._dataset_kind == _DatasetKind.Iterable and \
                    isinstance(data, _IterableDatasetStopIteration):
                if self._persistent_workers:
                    self._workers_status[data.worker_id] = False
                else:
                    self._mark_worker_as_unavailable(data.worker_id)
                self._try_put_index()
                continue

            if idx != self._rcvd_idx:
                self._task_info[idx] += (data,)
            else:
                del self._task_info[idx]
                return self._process_data(data)

    def _try_put_index(self):
        assert self._tasks_outstanding < self._prefetch_factor * self._num_workers
        try:
            index = self._next_index()
        except StopIteration:
            return
        for _ in range(self._num_workers):
            worker_queue_idx = next(self._worker_queue_idx_cycle)
            if self._workers_status[worker_queue_idx]:
                break
        else:
            return  # no active worker left
        self._index_queues[worker_queue_idx].put((self._send_idx, index))
        self._task_info[self._send_idx] = (worker_queue_idx,)
        self._tasks_outstanding += 1
        self._send_idx += 1

    def _process_data(self, data):
        self._rcvd_idx += 1
        self._try_put_index()
        if isinstance(data, ExceptionWrapper):
            data.reraise()
        return data

    # ------------------------------------------------------------------ shutdown
    def _mark_worker_as_unavailable(self, worker_id, shutdown=False):
        assert self._workers_status[worker_id] or (self._persistent_workers and shutdown)
        self._index_queues[worker_id].put(None)
        self._workers_status[worker_id] = False

    def _shutdown_workers(self, wait=True):
        """Stop the workers: ask them to leave and give each up to MP_STATUS_CHECK_INTERVAL
        seconds (wait=False: a moment, for workers stuck in the dataset after an error), then
        terminate those still running."""
        if getattr(self, "_shutdown", True):
            return
        self._shutdown = True
        try:
            self._workers_done_event.set()
            for worker_id in range(len(self._workers)):
                if self._persistent_workers or getattr(self, "_workers_status",
                                                       [True] * len(self._workers))[worker_id]:
                    try:
                        self._mark_worker_as_unavailable(worker_id, shutdown=True)
                    except (OSError, ValueError, AssertionError, AttributeError):
                        pass
            limit = _W.MP_STATUS_CHECK_INTERVAL if wait else _QUICK_JOIN
            deadline = time.monotonic() + limit
            for w in self._workers:
                w.join(timeout=max(0.0, deadline - time.monotonic()) if not wait else limit)
            for q in self._index_queues:
                q.cancel_join_thread()
                q.close()
        finally:
            alive = [w for w in self._workers if w.is_alive()]
            for w in alive:
                w.terminate()
            deadline = time.monotonic() + (_W.MP_STATUS_CHECK_INTERVAL if wait else _QUICK_JOIN)
            for w in alive:
                w.join(timeout=max(0.0, deadline - time.monotonic()))
            for w in alive:  # a worker that ignores SIGTERM (a handler inherited by fork)
                if w.is_alive():
                    w.kill()
                    w.join(timeout=_W.MP_STATUS_CHECK_INTERVAL)
            self._worker_result_queue.cancel_join_thread()
            self._worker_result_queue.close()

    def __del__(self):
        try:
            self._shutdown_workers()
        except Exception:
            pass


