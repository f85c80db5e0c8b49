"""What runs inside a DataLoader worker process, plus the pieces both sides share: WorkerInfo,
the exception wrapper, the fetchers and the Tensor reducer for the multiprocessing queues."""
import multiprocessing.queues
import os
import queue
import random
import sys
import traceback

import numpy as np

__all__ = ["get_worker_info", "WorkerInfo"]

# how long (s) the main process waits for a worker to exit before terminating it
MP_STATUS_CHECK_INTERVAL = 5.0
# how often (s) an idle worker wakes to check the shutdown event and that its parent lives
_POLL_INTERVAL = 0.1


# ---------------------------------------------------------------- Tensor transfer
def _rebuild_tensor(arr, requires_grad):
    from ...tensor import _wrap
    t = _wrap(arr)
    if requires_grad:
        t.requires_grad_(True)
    return t


def _reduce_tensor(t):
    if t.requires_grad and t.grad_fn is not None:
        raise RuntimeError("Cowardly refusing to serialize non-leaf tensor which requires_grad, "
                           "since autograd does not support crossing process boundaries.  If "
                           "you just want to transfer the data, call detach() on the tensor "
                           "before serializing (e.g., putting it on the queue).")
    return _rebuild_tensor, (np.ascontiguousarray(t._data), bool(t.requires_grad))


def _register_reducers():
    """Tensors cross process boundaries as their numpy array (pickled by value)."""
    from multiprocessing.reduction import ForkingPickler
    from ...tensor import Tensor
    ForkingPickler.register(Tensor, _reduce_tensor)


_register_reducers()


# ---------------------------------------------------------------- result queue
class _ResultQueue(multiprocessing.queues.Queue):
    """The workers' result queue. A multiprocessing Queue pickles in a background feeder
    thread and only prints a failure, which would leave the main process waiting forever for
    that batch: here the failure is sent in its place, as the batch's exception."""

    def __init__(self, ctx):
        super().__init__(ctx=ctx)

    def _on_queue_feeder_error(self, e, obj):
        if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[0], int) and \
                not isinstance(obj[1], ExceptionWrapper):
            wid = _worker_info.id if _worker_info is not None else "?"
            self.put((obj[0], ExceptionWrapper(
                exc_info=(type(e), e, e.__traceback__),
                where="in DataLoader worker process %s while sending the batch to the main "
                      "process (a batch must be picklable)" % wid)))
        else:
            super()._on_queue_feeder_error(e, obj)


# ---------------------------------------------------------------- worker info
class WorkerInfo:
    """Returned by get_worker_info() inside a worker: id, num_workers, seed, dataset."""
    __initialized = False

    def __init__(self, **kwargs):
        for k, v in kwargs.items():
            setattr(self, k, v)
        self.__keys = tuple(kwargs.keys())
        self.__initialized = True

    def __setattr__(self, key, val):
        if self.__initialized:
            raise RuntimeError("Cannot assign attributes to {} objects".format(
                self.__class__.__name__))
        return super().__setattr__(key, val)

    def __repr__(self):
        items = ["{}={}".format(k, getattr(self, k)) for k in self.__keys]
        return "{}({})".format(self.__class__.__name__, ", ".join(items))


_worker_info = None


def get_worker_info():
    """In a DataLoader worker process: a WorkerInfo (id, num_workers, seed, dataset -- the
    worker's own copy of the dataset). In the main process: None."""
    return _worker_info


# ---------------------------------------------------------------- exceptions across processes
class KeyErrorMessage(str):
    """str whose repr is itself, so a KeyError shows the traceback text readably."""

    def __repr__(self):
        return self


class ExceptionWrapper:
    """Carries an exception and its formatted traceback from a worker to the main process."""

    def __init__(self, exc_info=None, where="in background"):
        if exc_info is None:
            exc_info = sys.exc_info()
        self.exc_type = exc_info[0]
        self.exc_msg = "".join(traceback.format_exception(*exc_info))
        self.where = where

    def reraise(self):
        msg = "Caught {} {}.\nOriginal {}".format(self.exc_type.__name__, self.where,
                                                 self.exc_msg)
        if self.exc_type == KeyError:
            msg = KeyErrorMessage(msg)
        elif getattr(self.exc_type, "message", None):
            raise self.exc_type(message=msg)
        try:
            exception = self.exc_type(msg)
        except Exception:
            raise RuntimeError(msg) from None
        raise exception


# ---------------------------------------------------------------- fetchers
class _DatasetKind:
    Map = 0
    Iterable = 1

    @staticmethod
    def create_fetcher(kind, dataset, auto_collation, collate_fn, drop_last):
        if kind == _DatasetKind.Map:
            return _MapDatasetFetcher(dataset, auto_collation, collate_fn, drop_last)
        return _IterableDatasetFetcher(dataset, auto_collation, collate_fn, drop_last)


class _MapDatasetFetcher:
    def __init__(self, dataset, auto_collation, collate_fn, drop_last):
        self.dataset = dataset
        self.auto_collation = auto_collation
        self.collate_fn = collate_fn
        self.drop_last = drop_last

    def fetch(self, possibly_batched_index):
        if self.auto_collation:
            getitems = getattr(self.dataset, "__getitems__", None)
            if getitems:
                data = getitems(possibly_batched_index)
            else:
                data = [self.dataset[idx] for idx in possibly_batched_index]
        else:
            data = self.dataset[possibly_batched_index]
        return self.collate_fn(data)


class _IterableDatasetFetcher:
    def __init__(self, dataset, auto_collation, collate_fn, drop_last):
        self.dataset = dataset
        self.auto_collation = auto_collation
        self.collate_fn = collate_fn
        self.drop_last = drop_last
        self.dataset_iter = iter(dataset)
        self.ended = False

    def fetch(self, possibly_batched_index):
        if self.ended:
            raise StopIteration
        if self.auto_collation:
            data = []
            for _ in possibly_batched_index:
                try:
                    data.append(next(self.dataset_iter))
                except StopIteration:
                    self.ended = True
                    break
            if len(data) == 0 or (self.drop_last and len(data) < len(possibly_batched_index)):
                raise StopIteration
        else:
            data = next(self.dataset_iter)
        return self.collate_fn(data)


# ---------------------------------------------------------------- worker loop
class _IterableDatasetStopIteration:
    """Sent by a worker whose IterableDataset copy is exhausted."""

    def __init__(self, worker_id):
        self.worker_id = worker_id


class _ResumeIteration:
    """Sent to persistent workers at the start of a new epoch."""

    def __init__(self, seed=None):
        self.seed = seed


def _seed_worker(seed, base_seed, worker_id):
    from ...random import manual_seed
    random.seed(seed)
    manual_seed(seed)
    np.random.seed(np.random.SeedSequence([worker_id, base_seed & ((1 << 64) - 1)])
                   .generate_state(4))


def _worker_loop(dataset_kind, dataset, index_queue, data_queue, done_event, auto_collation,
                 collate_fn, drop_last, base_seed, init_fn, worker_id, num_workers,
                 persistent_workers):
    global _worker_info
    # the process that started us (the main process, or the forkserver, which exits with it)
    watched_ppid = os.getppid()
    try:
        # one compute thread per worker (as torch does): num_workers processes each running
        # all-core OpenMP kernels would oversubscribe the CPU
        from ..._config import set_num_threads
        set_num_threads(1)
        seed = base_seed + worker_id
        _seed_worker(seed, base_seed, worker_id)
        _worker_info = WorkerInfo(id=worker_id, num_workers=num_workers, seed=seed,
                                  dataset=dataset)

        init_exception = None
        fetcher = None
        try:
            if init_fn is not None:
                init_fn(worker_id)
            fetcher = _DatasetKind.create_fetcher(dataset_kind, dataset, auto_collation,
                                                  collate_fn, drop_last)
        except Exception:
            init_exception = ExceptionWrapper(where="in DataLoader worker process %d"
                                              % worker_id)

        iteration_end = False
        while True:
            try:
                r = index_queue.get(timeout=_POLL_INTERVAL)
            except queue.Empty:
                # the shutdown sentinel may never come (the main process died, or its queue
                # was finalized first by the garbage collector): the event and the parent's
                # pid are the other ways to learn that it is time to go
                if done_event.is_set() or os.getppid() != watched_ppid:
                    break
                continue
            if isinstance(r, _ResumeIteration):
                data_queue.put((r, None))
                iteration_end = False
                fetcher = _DatasetKind.create_fetcher(dataset_kind, dataset, auto_collation,
                                                      collate_fn, drop_last)
                continue
            if r is None:  # shutdown
                break
            if done_event.is_set() or iteration_end:
                continue
            idx, index = r
            if init_exception is not None:
                data = init_exception
                init_exception = None
            else:
                try:
                    data = fetcher.fetch(index)
                except Exception as e:
                    if isinstance(e, StopIteration) and dataset_kind == _DatasetKind.Iterable:
                        data = _IterableDatasetStopIteration(worker_id)
                        iteration_end = True
                    else:
                        data = ExceptionWrapper(where="in DataLoader worker process %d"
                                                % worker_id)
            data_queue.put((idx, data))  # a pickling failure is reported by _ResultQueue
            del data, idx, index, r
    except KeyboardInterrupt:
        pass
    if done_event.is_set():
        data_queue.cancel_join_thread()
        data_queue.close()
