"""Replacing a file atomically, for every file cengine writes to a path (checkpoints, the GEMM
tune file).

write_atomic(path, write) lets write(tmp) put the new content into a temporary file in the same
folder, flushes it to disk, gives it the mode a plain open() would (0o666 less the umask), renames
it over path (os.replace) and flushes the folder, so a crash leaves either the old file or the
new one, never half a file. On any exception the temporary file is removed and path is untouched.

The temporary file is named ".<name>.p<pid>-<random>.tmp". A writer killed before the rename
leaves it; the next write to the same path removes the ones whose writer (<pid>) is gone. Files
of a live writer (another write in progress) are left alone, and path itself is never touched
before the rename.
"""
import os
import tempfile

__all__ = ["write_atomic"]


def _tmp_prefix(base):
    return "." + base + ".p"


def _umask():
    """The process umask, read without changing it where the system says it (Linux); elsewhere
    set and restored at once."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: someone else's live process
        return True
    return True


def _remove_stale_temporaries(directory, base):
    if os.name != "posix":  # os.kill(pid, 0) is only a liveness test on POSIX
        return
    prefix = _tmp_prefix(base)
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        pid, sep, rand = name[len(prefix):-len(".tmp")].partition("-")
        if not sep or not pid.isdigit() or len(rand) < 6 or "." in rand:
            continue
        pid = int(pid)
        if pid == os.getpid() or _pid_alive(pid):
            continue
        try:
            os.unlink(os.path.join(directory, name))
        except OSError:
            pass


def _fsync_path(path, flags):
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path, write, makedirs=False):
    """Replace the file at path by what write(tmp) writes into the file named tmp (a new empty
    file in path's folder). makedirs=True creates the folder first. Returns None; raises what
    write, the file system or the rename raise, with path left as it was."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    if makedirs:
        os.makedirs(directory, exist_ok=True)
    _remove_stale_temporaries(directory, base)
    fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(base) + "%d-" % os.getpid(), suffix=".tmp",
                               dir=directory)
    try:
        os.close(fd)
        write(tmp)
        _fsync_path(tmp, os.O_RDWR)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable (best effort; not every platform allows it)
        _fsync_path(directory, os.O_RDONLY)
    except OSError:
        pass
