"""Collective communication over MPI (mpi4py), with torch.distributed's names and semantics.

Launch a script on several processes (or machines, with a hostfile) with
``mpiexec -n 2 python train.py``; rank and world size come from MPI. Tensors are handed to MPI
as their own numpy buffers (no copy when contiguous). ``async_op=True`` starts a non-blocking
MPI collective and returns a :class:`Work` handle whose ``wait()`` finishes it.

Before each collective the ranks compare the size and dtype of what they pass (one small extra
all-reduce), so a mismatch raises a RuntimeError on every rank instead of a hang or mixed data;
``CENGINE_DIST_CHECK=0`` in the environment skips that check.

An uncaught exception on any rank after :func:`init_process_group` aborts the whole MPI job
(every rank exits non-zero) instead of leaving the other ranks waiting in a collective.
"""
import enum
import importlib.util
import os
import sys
import time
import traceback

import numpy as np

__all__ = ["is_available", "is_mpi_available", "is_gloo_available", "is_nccl_available",
           "is_initialized", "init_process_group", "destroy_process_group", "get_rank",
           "get_world_size", "get_backend", "barrier", "ReduceOp", "Work", "group", "GroupMember",
           "all_reduce", "reduce", "broadcast", "all_gather", "all_gather_into_tensor",
           "reduce_scatter_tensor", "gather", "scatter", "send", "recv", "isend", "irecv",
           "all_gather_object", "broadcast_object_list", "gather_object"]

_INSTALL_HINT = ('cengine.distributed needs mpi4py and an MPI library: pip install "cengine[dist]" '
                 "(it brings mpi4py and the mpich wheel, whose mpiexec launches the processes)")


def is_available():
    """True when mpi4py can be imported (MPI itself is started by init_process_group)."""
    return importlib.util.find_spec("mpi4py") is not None


def is_mpi_available():
    return is_available()


def is_gloo_available():
    return False


def is_nccl_available():
    return False


class ReduceOp(enum.Enum):
    """Reduction of all_reduce / reduce / reduce_scatter_tensor (torch.distributed.ReduceOp)."""
    SUM = "sum"
    AVG = "avg"
    PRODUCT = "product"
    MIN = "min"
    MAX = "max"

    def __repr__(self):
        return "<RedOpType.%s>" % self.name


class _World:
    """The one process group cengine supports: every rank of the MPI job."""
    def __repr__(self):
        return "<cengine.distributed.group.WORLD>"


class group:
    WORLD = _World()


class GroupMember:
    WORLD = group.WORLD
    NON_GROUP_MEMBER = -100


class _State:
    comm = None          # a duplicate of MPI.COMM_WORLD owned by cengine
    MPI = None
    backend = None
    old_excepthook = None


_S = _State()


def _mpi():
    if _S.MPI is None:
        if not is_available():
            raise RuntimeError(_INSTALL_HINT)
        from mpi4py import MPI
        _S.MPI = MPI
    return _S.MPI


def is_initialized():
    return _S.comm is not None


def _comm(group=None):
    if _S.comm is None:
        raise ValueError("Default process group has not been initialized, please make sure to "
                         "call init_process_group.")
    if group is not None and group is not GroupMember.WORLD:
        raise ValueError("cengine.distributed supports the default group (WORLD) only")
    return _S.comm


def _abort_hook(etype, value, tb):
    """Print the exception, then abort the whole MPI job so no other rank waits forever."""
    try:
        # one write, then a moment for mpiexec's proxy to forward it: the abort kills the
        # proxies too, and lines still in flight were lost (a bare "Traceback" line arrived)
        sys.stderr.write("".join(traceback.format_exception(etype, value, tb)) +
                         "cengine.distributed: rank %d raised %s; aborting the MPI job\n"
                         % (_S.comm.Get_rank() if _S.comm is not None else -1, etype.__name__))
        sys.stderr.flush()
        time.sleep(0.5)
    finally:
        _mpi().COMM_WORLD.Abort(1)


def init_process_group(backend=None, init_method=None, timeout=None, world_size=-1, rank=-1,
                       store=None, group_name="", pg_options=None, device_id=None):
    """Join the MPI job started by mpiexec. backend "mpi" (also accepted: None and "gloo", which
    run on MPI here); world_size / rank, when given, must agree with MPI's."""
    if backend is not None:
        b = str(backend).lower()
        if b == "nccl":
            raise RuntimeError("cengine.distributed has no NCCL backend (no CUDA path); use "
                               'backend="mpi" and launch with mpiexec')
        if b not in ("mpi", "gloo", "cpu:gloo", "cpu:mpi"):
            raise ValueError("Invalid backend: '%s' (cengine.distributed runs on MPI: "
                             'backend="mpi")' % backend)
    if _S.comm is not None:
        raise ValueError("trying to initialize the default process group twice!")
    MPI = _mpi()
    comm = MPI.COMM_WORLD.Dup()
    if world_size not in (-1, None) and int(world_size) != comm.Get_size():
        comm.Free()
        raise ValueError("world_size=%d does not match the MPI job's size %d (launch with "
                         "mpiexec -n %d)" % (world_size, MPI.COMM_WORLD.Get_size(), world_size))
    if rank not in (-1, None) and int(rank) != comm.Get_rank():
        r = comm.Get_rank()
        comm.Free()
        raise ValueError("rank=%d does not match this process's MPI rank %d" % (rank, r))
    _S.comm = comm
    _S.backend = "mpi"
    if _S.old_excepthook is None:
        _S.old_excepthook = sys.excepthook
        sys.excepthook = _abort_hook


def destroy_process_group(group=None):
    comm = _comm(group)
    for w in list(_pending):
        w.wait()
    _S.comm = None
    _S.backend = None
    if _S.old_excepthook is not None:
        sys.excepthook = _S.old_excepthook
        _S.old_excepthook = None
    comm.Free()


def get_rank(group=None):
    return _comm(group).Get_rank()


def get_world_size(group=None):
    return _comm(group).Get_size()


def get_backend(group=None):
    _comm(group)
    return _S.backend


# ---- buffers ------------------------------------------------------------------------------

def _arr(t, name="tensor"):
    from ..tensor import Tensor
    if not isinstance(t, Tensor):
        raise TypeError("%s must be a cengine Tensor, got %s" % (name, type(t).__name__))
    return t._data


def _buf(a):
    """(contiguous array to hand MPI, whether results must be copied back into a)"""
    if a.flags.c_contiguous and a.flags.writeable:
        return a, False
    return np.ascontiguousarray(a), True


def _bump(t):
    t._version[0] += 1


def _written_back(t, a, buf, back):
    """a collective's result in buf lands in t (its array a; copied when buf is _buf's copy)"""
    if back:
        a[...] = buf
    _bump(t)


def _reduced_back(t, a, buf, back, op, n):
    """_written_back for a reduction over n ranks: ReduceOp.AVG divides the sum by n first"""
    if op is ReduceOp.AVG:
        np.multiply(buf, 1.0 / n, out=buf, casting="unsafe")
    _written_back(t, a, buf, back)


_MPI_OPS = None


def _op(op):
    global _MPI_OPS
    MPI = _mpi()
    if _MPI_OPS is None:
        _MPI_OPS = {ReduceOp.SUM: MPI.SUM, ReduceOp.AVG: MPI.SUM, ReduceOp.PRODUCT: MPI.PROD,
                    ReduceOp.MIN: MPI.MIN, ReduceOp.MAX: MPI.MAX}
    if not isinstance(op, ReduceOp):
        raise ValueError("op must be a cengine.distributed.ReduceOp, got %r" % (op,))
    return _MPI_OPS[op]


_CHECK = os.environ.get("CENGINE_DIST_CHECK", "1") != "0"


def _dtype_code(dt):
    """the same number for the same dtype on every rank (kind, item size)"""
    return (ord(dt.kind) << 8) | dt.itemsize


def _validated(comm, what, check):
    """Run the local argument checks of a collective, then agree with the other ranks (one
    small MAX all-reduce of (n, -n, dtype, -dtype, failed)): when any rank's checks failed, or
    the ranks pass buffers of different sizes or dtypes, every rank raises, instead of the
    others waiting in the collective or MPI truncating or mixing data. Returns check()'s array
    (or None). With CENGINE_DIST_CHECK=0 only the local checks run."""
    try:
        a, err = check(), None
    except (TypeError, ValueError, RuntimeError) as e:
        a, err = None, e
    if not _CHECK:
        if err is not None:
            raise err
        return a
    n = a.size if a is not None else 0
    code = _dtype_code(a.dtype) if a is not None else 0
    mine = np.array([n, -n, code, -code, err is not None], np.int64)
    got = np.empty_like(mine)
    comm.Allreduce(mine, got, _mpi().MAX)
    if err is not None:
        raise err
    if got[4]:
        raise RuntimeError("%s: another rank passed invalid arguments (see its error)" % what)
    if a is not None and (got[0] != -got[1] or got[2] != -got[3]):
        raise RuntimeError("%s: the ranks passed tensors of different sizes or dtypes (this rank: "
                           "%d elements of %s); every rank must pass the same shape and dtype"
                           % (what, a.size, a.dtype))
    return a


_pending = []   # Work handles not waited for yet: they keep their buffers alive and finish later


def _progress():
    """finish the asynchronous operations that have completed (their copy-back, AVG scaling
    and version bump), as torch completes them whether or not wait() is called"""
    for w in list(_pending):
        w.is_completed()


class Work:
    """Handle of an asynchronous operation: wait() completes it (and copies results back)."""

    def __init__(self, req=None, finish=None, status=None):
        self._req = req
        self._finish = finish
        self._status = status
        self._done = req is None
        if not self._done:
            _pending.append(self)

    def _complete(self):
        if not self._done:
            self._done = True
            try:
                _pending.remove(self)
            except ValueError:
                pass
            if self._finish is not None:
                self._finish()

    def wait(self, timeout=None):
        if not self._done:
            if self._status is not None:
                self._req.Wait(self._status)
            else:
                self._req.Wait()
            self._complete()
        return True

    def is_completed(self):
        if not self._done:
            if self._status is not None:
                done = self._req.Test(self._status)
            else:
                done = self._req.Test()
            if done:
                self._complete()
        return self._done

    def is_success(self):
        return self.is_completed()

    def result(self):
        self.wait()
        return []


def _run(req_fn, blocking_fn, finish, async_op):
    _progress()
    if async_op:
        return Work(req_fn(), finish)
    blocking_fn()
    if finish is not None:
        finish()
    return None


def _check_src(comm, r, name="src"):
    if not isinstance(r, (int, np.integer)) or not 0 <= int(r) < comm.Get_size():
        raise ValueError("%s=%r is not a rank of this group (world size %d)"
                         % (name, r, comm.Get_size()))


def _check_root_list(comm, root, lst, a, what, name, role):
    """gather/scatter: the root passes world_size tensors of a's size, the other ranks none"""
    n = comm.Get_size()
    if comm.Get_rank() == root:
        if not isinstance(lst, (list, tuple)) or len(lst) != n:
            raise ValueError("%s must be a list of world_size (%d) tensors on the %s rank"
                             % (name, n, role))
        for t in lst:
            if _arr(t, name + " entry").size != a.size:
                raise RuntimeError("%s: every tensor in %s must have as many elements as this "
                                   "rank's tensor (%d)" % (what, name, a.size))
    elif lst:
        raise ValueError("Argument ``%s`` must NOT be specified on non-%s ranks." % (name, role))


def _check_avg(op, a, what):
    if op is ReduceOp.AVG and a.dtype.kind not in "fc":
        raise RuntimeError("%s with ReduceOp.AVG needs a floating-point tensor, got %s"
                           % (what, a.dtype))


# ---- collectives --------------------------------------------------------------------------

def all_reduce(tensor, op=ReduceOp.SUM, group=None, async_op=False):
    """Reduce tensor across ranks in place (every rank gets the result)."""
    comm = _comm(group)

    def check():
        a = _arr(tensor)
        _op(op)
        _check_avg(op, a, "all_reduce")
        return a
    a = _validated(comm, "all_reduce", check)
    mop = _op(op)
    buf, back = _buf(a)
    IN = _mpi().IN_PLACE
    n = comm.Get_size()

    def finish():
        _reduced_back(tensor, a, buf, back, op, n)
    return _run(lambda: comm.Iallreduce(IN, buf, mop), lambda: comm.Allreduce(IN, buf, mop),
                finish, async_op)


def reduce(tensor, dst=0, op=ReduceOp.SUM, group=None, async_op=False):
    """Reduce tensor across ranks into rank dst's tensor (others keep theirs)."""
    comm = _comm(group)

    def check():
        a = _arr(tensor)
        _op(op)
        _check_src(comm, dst, "dst")
        _check_avg(op, a, "reduce")
        return a
    a = _validated(comm, "reduce", check)
    mop = _op(op)
    buf, back = _buf(a)
    root = comm.Get_rank() == dst
    MPI = _mpi()
    send = MPI.IN_PLACE if root else buf
    recv = buf if root else None

    def finish():
        if root:
            _reduced_back(tensor, a, buf, back, op, comm.Get_size())
    return _run(lambda: comm.Ireduce(send, recv, mop, root=dst),
                lambda: comm.Reduce(send, recv, mop, root=dst), finish, async_op)


def broadcast(tensor, src=0, group=None, async_op=False):
    """Copy rank src's tensor into every rank's tensor."""
    comm = _comm(group)

    def check():
        a = _arr(tensor)
        _check_src(comm, src)
        return a
    a = _validated(comm, "broadcast", check)
    buf, back = _buf(a)

    def finish():
        _written_back(tensor, a, buf, back)
    return _run(lambda: comm.Ibcast(buf, root=src), lambda: comm.Bcast(buf, root=src), finish,
                async_op)


def all_gather(tensor_list, tensor, group=None, async_op=False):
    """tensor_list[r] = rank r's tensor, on every rank."""
    comm = _comm(group)
    n = comm.Get_size()

    def check():
        a = _arr(tensor)
        if not isinstance(tensor_list, (list, tuple)) or len(tensor_list) != n:
            raise ValueError("tensor_list must be a list of world_size (%d) tensors" % n)
        for t in tensor_list:
            o = _arr(t, "tensor_list entry")
            if o.shape != a.shape or o.dtype != a.dtype:
                raise RuntimeError("all_gather: every tensor in tensor_list must have the "
                                   "input's shape %s and dtype %s" % (tuple(a.shape), a.dtype))
        return a
    a = _validated(comm, "all_gather", check)
    src = np.ascontiguousarray(a)
    out = np.empty((n,) + a.shape, a.dtype)

    def finish():
        for t, piece in zip(tensor_list, out):
            t._data[...] = piece
            _bump(t)
    return _run(lambda: comm.Iallgather(src, out), lambda: comm.Allgather(src, out), finish,
                async_op)


def all_gather_into_tensor(output_tensor, input_tensor, group=None, async_op=False):
    """output = the ranks' inputs concatenated along dim 0 (or stacked, for a (world, ...) output)."""
    comm = _comm(group)
    n = comm.Get_size()

    def check():
        a = _arr(input_tensor, "input_tensor")
        o = _arr(output_tensor, "output_tensor")
        if o.size != n * a.size or o.dtype != a.dtype:
            raise ValueError("output tensor size must be equal to world_size times input tensor "
                             "size (output %s, input %s, world size %d)"
                             % (tuple(o.shape), tuple(a.shape), n))
        return a
    a = _validated(comm, "all_gather_into_tensor", check)
    o = output_tensor._data
    src = np.ascontiguousarray(a)
    buf, back = _buf(o)

    def finish():
        _written_back(output_tensor, o, buf.reshape(o.shape), back)
    return _run(lambda: comm.Iallgather(src, buf), lambda: comm.Allgather(src, buf), finish,
                async_op)


def reduce_scatter_tensor(output, input, op=ReduceOp.SUM, group=None, async_op=False):
    """Reduce input across ranks, then rank r keeps the r-th of world_size equal chunks."""
    comm = _comm(group)
    n = comm.Get_size()

    def check():
        a = _arr(input, "input")
        o = _arr(output, "output")
        _op(op)
        _check_avg(op, a, "reduce_scatter_tensor")
        if a.size != n * o.size or o.dtype != a.dtype:
            raise ValueError("input tensor must be the same size as output size times world "
                             "size (input %s, output %s, world size %d)"
                             % (tuple(a.shape), tuple(o.shape), n))
        return a
    a = _validated(comm, "reduce_scatter_tensor", check)
    mop = _op(op)
    o = output._data
    src = np.ascontiguousarray(a)
    buf, back = _buf(o)

    def finish():
        _reduced_back(output, o, buf, back, op, n)
    return _run(lambda: comm.Ireduce_scatter_block(src, buf, mop),
                lambda: comm.Reduce_scatter_block(src, buf, mop), finish, async_op)


def gather(tensor, gather_list=None, dst=0, group=None, async_op=False):
    """On rank dst, gather_list[r] = rank r's tensor; other ranks pass gather_list=None."""
    comm = _comm(group)
    n = comm.Get_size()

    def check():
        a = _arr(tensor)
        _check_src(comm, dst, "dst")
        _check_root_list(comm, dst, gather_list, a, "gather", "gather_list", "destination")
        return a
    a = _validated(comm, "gather", check)
    root = comm.Get_rank() == dst
    src = np.ascontiguousarray(a)
    out = np.empty((n,) + a.shape, a.dtype) if root else None

    def finish():
        if root:
            for t, piece in zip(gather_list, out):
                t._data[...] = piece.reshape(t._data.shape)
                _bump(t)
    return _run(lambda: comm.Igather(src, out, root=dst), lambda: comm.Gather(src, out, root=dst),
                finish, async_op)


def scatter(tensor, scatter_list=None, src=0, group=None, async_op=False):
    """Rank r's tensor = scatter_list[r] of rank src; other ranks pass scatter_list=None."""
    comm = _comm(group)
    n = comm.Get_size()

    def check():
        a = _arr(tensor)
        _check_src(comm, src)
        _check_root_list(comm, src, scatter_list, a, "scatter", "scatter_list", "source")
        return a
    a = _validated(comm, "scatter", check)
    if comm.Get_rank() == src:
        sendbuf = np.stack([np.ascontiguousarray(t._data).astype(a.dtype, copy=False)
                            .reshape(a.shape) for t in scatter_list])
    else:
        sendbuf = None
    buf, back = _buf(a)

    def finish():
        if back:
            a[...] = buf
        _bump(tensor)
    return _run(lambda: comm.Iscatter(sendbuf, buf, root=src),
                lambda: comm.Scatter(sendbuf, buf, root=src), finish, async_op)


# ---- point to point -----------------------------------------------------------------------
# Each message is a header (element count, dtype code) then the data, so a receiver with a
# tensor of another size or dtype raises instead of reinterpreting bytes.

def _header(a):
    return np.array([a.size, _dtype_code(a.dtype)], np.int64)


def _check_header(h, buf):
    if h[0] != buf.size or h[1] != _dtype_code(buf.dtype):
        raise RuntimeError("recv: the sender's tensor (%d elements, dtype code %d) does not match "
                           "the receiving tensor (%d elements of %s)"
                           % (h[0], h[1], buf.size, buf.dtype))


def send(tensor, dst, group=None, tag=0):
    comm = _comm(group)
    _check_src(comm, dst, "dst")
    a = np.ascontiguousarray(_arr(tensor))
    _progress()
    comm.Send(_header(a), dest=dst, tag=tag)
    comm.Send(a, dest=dst, tag=tag)


def isend(tensor, dst, group=None, tag=0):
    comm = _comm(group)
    _check_src(comm, dst, "dst")
    buf = np.ascontiguousarray(_arr(tensor))
    head = _header(buf)
    _progress()
    r1 = comm.Isend(head, dest=dst, tag=tag)
    r2 = comm.Isend(buf, dest=dst, tag=tag)
    return Work(_Both(r1, r2, keep=(head, buf)))


class _Both:
    """two requests completed together (the header and the data of one message); holds the
    buffers until both are done"""

    def __init__(self, r1, r2, keep=None):
        self.r1, self.r2, self.keep = r1, r2, keep

    def Wait(self, status=None):
        self.r1.Wait()
        if status is None:
            self.r2.Wait()
        else:
            self.r2.Wait(status)

    def Test(self, status=None):
        done1 = self.r1.Test()
        done2 = self.r2.Test() if status is None else self.r2.Test(status)
        return done1 and done2


def _recv_setup(tensor, src, group):
    """(comm, MPI, array, buffer, copy-back flag, header buffer, status) for a receive"""
    comm = _comm(group)
    MPI = _mpi()
    if src is not None:
        _check_src(comm, src)
    a = _arr(tensor)
    buf, back = _buf(a)
    _progress()
    return comm, MPI, a, buf, back, np.empty(2, np.int64), MPI.Status()


def recv(tensor, src=None, group=None, tag=0):
    """Receive into tensor from rank src (any rank when None); returns the sender's rank."""
    comm, MPI, a, buf, back, head, status = _recv_setup(tensor, src, group)
    comm.Recv(head, source=MPI.ANY_SOURCE if src is None else src, tag=tag, status=status)
    sender = status.Get_source()
    try:
        _check_header(head, buf)
    except RuntimeError:
        # take the data message off the wire so later messages stay in step, then raise
        junk = np.empty(int(head[0]) * max(1, int(head[1]) & 0xff), np.uint8)
        comm.Recv(junk, source=sender, tag=tag)
        raise
    comm.Recv(buf, source=sender, tag=tag)
    if back:
        a[...] = buf
    _bump(tensor)
    return sender


def irecv(tensor, src=None, group=None, tag=0):
    """Non-blocking recv; the size and dtype check happens in wait()."""
    comm, MPI, a, buf, back, head, status = _recv_setup(tensor, src, group)
    source = MPI.ANY_SOURCE if src is None else src
    if src is None:
        # the data must come from the header's sender: receive the header first
        comm.Recv(head, source=source, tag=tag, status=status)
        source = status.Get_source()
        r1 = MPI.REQUEST_NULL
    else:
        r1 = comm.Irecv(head, source=source, tag=tag)
    r2 = comm.Irecv(buf, source=source, tag=tag)

    def finish():
        _check_header(head, buf)
        if back:
            a[...] = buf
        _bump(tensor)
    return Work(_Both(r1, r2), finish, status)


def barrier(group=None, async_op=False, device_ids=None):
    comm = _comm(group)
    return _run(comm.Ibarrier, comm.Barrier, None, async_op)


# ---- picklable objects --------------------------------------------------------------------

def all_gather_object(object_list, obj, group=None):
    comm = _comm(group)
    n = comm.Get_size()
    if len(object_list) != n:
        raise ValueError("object_list must have world_size (%d) entries" % n)
    object_list[:] = comm.allgather(obj)


def gather_object(obj, object_gather_list=None, dst=0, group=None):
    comm = _comm(group)
    _check_src(comm, dst, "dst")
    got = comm.gather(obj, root=dst)
    if comm.Get_rank() == dst:
        object_gather_list[:] = got


def broadcast_object_list(object_list, src=0, group=None, device=None):
    comm = _comm(group)
    _check_src(comm, src)
    got = comm.bcast(list(object_list) if comm.Get_rank() == src else None, root=src)
    if len(got) != len(object_list):
        raise RuntimeError("broadcast_object_list: the lists on the ranks have different lengths")
    object_list[:] = got
