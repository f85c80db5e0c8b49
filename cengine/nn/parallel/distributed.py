"""DistributedDataParallel: data-parallel training over cengine.distributed (MPI).

Each rank holds a full copy of the module and trains on its own shard of every batch. At
construction the parameters and buffers are broadcast from rank 0. During backward, a hook on
every parameter copies its gradient into a flat bucket as soon as it is ready; a full bucket
starts a non-blocking MPI all-reduce at once, so communication overlaps the rest of the backward
pass. Buckets hold parameters in reverse registration order (roughly the order backward produces
their gradients) and start in bucket order on every rank, which MPI's collective ordering needs.
When backward finishes, the all-reduces are waited for and the averaged gradients copied back
into each parameter's .grad.
"""
import contextlib

import numpy as np

from ... import distributed as dist
from ...autograd import engine as _engine
from ...autograd.grad_mode import is_grad_enabled, no_grad
from ..module import Module

__all__ = ["DistributedDataParallel"]

_FIRST_BUCKET_BYTES = 1 << 20   # torch's default first bucket (it starts communicating early)


class _Bucket:
    __slots__ = ("params", "offsets", "flat", "ready", "req", "used")

    def __init__(self, params):
        self.params = params
        self.offsets = []
        off = 0
        for p in params:
            self.offsets.append(off)
            off += p._data.size
        self.flat = np.zeros(off, params[0]._data.dtype)
        self.ready = 0
        self.req = None
        self.used = np.zeros(len(params), np.uint8)


class DistributedDataParallel(Module):
    """torch.nn.parallel.DistributedDataParallel on MPI (see the module docstring)."""

    def __init__(self, module, device_ids=None, output_device=None, dim=0, broadcast_buffers=True,
                 process_group=None, bucket_cap_mb=None, find_unused_parameters=False,
                 check_reduction=False, gradient_as_bucket_view=False, static_graph=False,
                 delay_all_reduce_named_params=None, param_to_hook_all_reduce=None,
                 mixed_precision=None, device_mesh=None):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError("DistributedDataParallel expects a cengine.nn.Module, got %s"
                            % type(module).__name__)
        if device_ids not in (None, [], ["cpu"]) or output_device not in (None, "cpu"):
            raise ValueError("DistributedDataParallel device_ids and output_device should be "
                             "None for CPU modules")
        self._comm = dist._comm(process_group)
        self.module = module
        self.broadcast_buffers = broadcast_buffers
        self.find_unused_parameters = find_unused_parameters
        self.world_size = self._comm.Get_size()
        cap = int((25 if bucket_cap_mb is None else bucket_cap_mb) * 1024 * 1024)
        params = [p for p in module.parameters() if p.requires_grad]
        self._check_same_model(module)
        self._sync_module()
        self._buckets, self._slot = self._make_buckets(params, cap)
        # the used-parameter flags travel on their own communicator: a blocking collective on
        # the gradient communicator could be issued between other ranks' bucket all-reduces
        self._flag_comm = self._comm.Dup() if find_unused_parameters else None
        self._require_sync = True   # set by no_sync(); read at forward time as torch does
        self._sync_this_backward = False
        self._next_launch = 0
        self._queued = False
        for p in params:
            p.register_post_accumulate_grad_hook(self._grad_ready)

    # -- construction ----------------------------------------------------------------------
    def _check_same_model(self, module):
        mine = [(n, tuple(p.shape), str(p._data.dtype)) for n, p in module.named_parameters()]
        theirs = self._comm.allgather(mine)
        for r, other in enumerate(theirs):
            if other != mine:
                raise RuntimeError("DistributedDataParallel: rank %d's module has other parameters "
                                   "(names, shapes or dtypes) than rank %d's; every rank must "
                                   "build the same model" % (r, self._comm.Get_rank()))

    def _sync_module(self):
        with no_grad():
            for t in list(self.module.parameters()) + list(self.module.buffers()):
                a = t._data
                buf = a if a.flags.c_contiguous else np.ascontiguousarray(a)
                self._comm.Bcast(buf, root=0)
                if buf is not a:
                    a[...] = buf
                t._version[0] += 1

    @staticmethod
    def _make_buckets(params, cap):
        buckets, cur, size, limit = [], [], 0, min(_FIRST_BUCKET_BYTES, cap)
        for p in reversed(params):
            nbytes = p._data.nbytes
            if cur and (size + nbytes > limit or p._data.dtype != cur[0]._data.dtype):
                buckets.append(_Bucket(cur))
                cur, size, limit = [], 0, cap
            cur.append(p)
            size += nbytes
        if cur:
            buckets.append(_Bucket(cur))
        slot = {}
        for bi, b in enumerate(buckets):
            for k, p in enumerate(b.params):
                slot[id(p)] = (bi, k)
        return buckets, slot

    # -- forward / backward ----------------------------------------------------------------
    def forward(self, *inputs, **kwargs):
        if self.broadcast_buffers and self.world_size > 1:
            with no_grad():
                for t in self.module.buffers():
                    a = t._data
                    buf = a if a.flags.c_contiguous else np.ascontiguousarray(a)
                    self._comm.Bcast(buf, root=0)
                    if buf is not a:
                        a[...] = buf
        if is_grad_enabled() and self._require_sync:
            self._sync_this_backward = True
            self._next_launch = 0
            for b in self._buckets:
                b.ready = 0
                b.req = None
                b.used[:] = 0
        else:
            self._sync_this_backward = False
        return self.module(*inputs, **kwargs)

    @contextlib.contextmanager
    def no_sync(self):
        """Backward passes of forwards run inside accumulate gradients locally, without
        communication; the first synchronised backward after it all-reduces the sum."""
        old = self._require_sync
        self._require_sync = False
        try:
            yield
        finally:
            self._require_sync = old

    def _grad_ready(self, p):
        if not self._sync_this_backward:
            return
        if not self._queued:
            self._queued = True
            _engine.queue_callback(self._finish_backward)
        bi, k = self._slot[id(p)]
        b = self._buckets[bi]
        if b.used[k]:
            return
        off = b.offsets[k]
        b.flat[off:off + p._data.size] = p.grad._data.reshape(-1)
        b.used[k] = 1
        b.ready += 1
        self._launch_ready()
        # drive MPI progress on the buckets in flight (MPI progresses inside MPI calls)
        for q in self._buckets[:self._next_launch]:
            if q.req is not None:
                q.req.Test()

    def _launch_ready(self):
        MPI = dist._mpi()
        while (self._next_launch < len(self._buckets)
               and self._buckets[self._next_launch].ready == len(self._buckets[self._next_launch]
                                                                 .params)):
            b = self._buckets[self._next_launch]
            b.req = self._comm.Iallreduce(MPI.IN_PLACE, b.flat, MPI.SUM)
            self._next_launch += 1

    def _finish_backward(self):
        self._queued = False
        self._sync_this_backward = False
        missing = [b for b in self._buckets if b.ready < len(b.params)]
        if missing and not self.find_unused_parameters:
            names = {id(p): n for n, p in self.module.named_parameters()}
            unused = [names.get(id(p), "?") for b in missing for k, p in enumerate(b.params)
                      if not b.used[k]]
            raise RuntimeError("DistributedDataParallel: parameters that require grad received "
                               "no gradient in this backward pass: %s. If the model does not use "
                               "every parameter in every step, pass "
                               "find_unused_parameters=True" % ", ".join(unused))
        MPI = dist._mpi()
        if self.find_unused_parameters:
            # which parameters got a gradient on any rank (the others keep .grad untouched)
            used = np.concatenate([b.used for b in self._buckets])
            self._flag_comm.Allreduce(MPI.IN_PLACE, used, MPI.MAX)
            o = 0
            for b in missing:
                for k in range(len(b.params)):
                    if not b.used[k]:
                        off = b.offsets[k]
                        b.flat[off:off + b.params[k]._data.size] = 0
                        b.used[k] = 1
                        b.ready += 1
            self._launch_ready()
            for b in self._buckets:
                b.used[:] = used[o:o + len(b.params)]
                o += len(b.params)
        scale = 1.0 / self.world_size
        for b in self._buckets:
            b.req.Wait()
            b.req = None
            b.flat *= b.flat.dtype.type(scale)
            for k, p in enumerate(b.params):
                if not b.used[k]:
                    continue
                off = b.offsets[k]
                piece = b.flat[off:off + p._data.size].reshape(p._data.shape)
                if p.grad is None:
                    from ...tensor import _wrap
                    p.grad = _wrap(piece.copy())
                else:
                    p.grad._data[...] = piece
