"""The GEMM tune file (written by python -m cengine.tune, see tune.py): its location, the key of
this CPU in it, and applying its block sizes at import. Kept apart from tune.py so that
importing cengine does not import the command's module (python -m cengine.tune runs it)."""
import json
import os
import warnings

from ._atomicfile import write_atomic

FILE_VERSION = 1
_applied = {"path": None, "status": "not loaded", "entries": {}}


def cache_path():
    """The per-user tune file: $XDG_CACHE_HOME/cengine/tune.json or ~/.cache/cengine/tune.json."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "cengine", "tune.json")


def _model_name():
    from . import _C
    name = _C.cpu_model()
    if not name:
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("model name"):
                        name = line.split(":", 1)[1].strip()
                        break
        except OSError:
            pass
    if not name:
        import platform
        name = platform.processor() or platform.machine() or "unknown CPU"
    return " ".join(name.split())


def cpu_key():
    """Key of this CPU in the tune file: its model name, CPUID family and model, and cache sizes
    (virtual machines often report a generic model name such as "AMD EPYC" for several CPU
    generations; family/model and the caches tell them apart)."""
    from . import _C
    c = _C.cpu_caches()
    sizes = " ".join("%s=%dK" % (lv, c[lv]["size"] // 1024) for lv in ("L1", "L2", "L3") if c[lv])
    sig = _C.cpu_signature()
    fm = " | family %d model %d" % sig[:2] if sig else ""
    return "%s%s | %s" % (_model_name(), fm, sizes or "caches unknown")


def default_blocking(dtype, isa):
    """(kc, mc, nc) that the GEMM derives from this CPU's caches for (dtype, isa), as at
    import (src_c/gemm.c), or None when the caches are unknown (fixed sizes)."""
    from . import _C
    mr, nr = _C.gemm_tile(dtype, isa)
    d = _C.gemm_derive_blocking(_C.cpu_caches(), mr, nr, 4 if dtype == "float32" else 8,
                                _C.gemm_prefetch_rows(isa))
    return list(d) if d else None


def _disabled():
    return os.environ.get("CENGINE_TUNE", "1").strip().lower() in ("0", "false", "no", "off")


def _read(path):
    """The parsed file, {} when it does not exist; ValueError when it is not a tune file."""
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(str(e)) from None
    if not isinstance(data, dict) or data.get("version") != FILE_VERSION or \
            not isinstance(data.get("cpus"), dict):
        raise ValueError("not a cengine tune file of version %d" % FILE_VERSION)
    return data


def _valid_entry(e):
    return isinstance(e, dict) and all(
        isinstance(e.get(k), int) and not isinstance(e.get(k), bool) for k in ("kc", "mc", "nc"))


def load(path=None):
    """This CPU's entries {"float32/avx512": {"kc", "mc", "nc", ...}, ...} from the tune file
    ({} when there are none). A malformed file raises ValueError."""
    data = _read(path or cache_path())
    entries = data.get("cpus", {}).get(cpu_key(), {}) if data else {}
    if not isinstance(entries, dict):
        raise ValueError("the entry for this CPU is not a mapping")
    return entries


def apply(path=None, warn=True):
    """Set the GEMM block sizes from this CPU's tune-file entry (called at import). Returns the
    number of (dtype, ISA) entries applied; 0 when disabled (CENGINE_TUNE=0), absent or
    unreadable (with a warning)."""
    from . import _C
    path = path or cache_path()
    _applied.update(path=path, entries={})
    if _disabled():
        _applied["status"] = "disabled (CENGINE_TUNE=0)"
        return 0
    try:
        entries = load(path)
    except ValueError as e:
        _applied["status"] = "ignored (unreadable: %s)" % e
        if warn:
            warnings.warn("cengine: ignoring the GEMM tune file %s (%s); run python -m "
                          "cengine.tune to rewrite it" % (path, e), RuntimeWarning, stacklevel=2)
        return 0
    n = 0
    bad, stale = [], []
    for key, e in sorted(entries.items()):
        dt, _, isa = key.partition("/")
        if dt not in ("float32", "float64") or isa not in _C.ISA_NAMES or not _valid_entry(e):
            bad.append(key)
            continue
        # measured against another default (an older cengine, another blocking rule): the
        # comparison that chose it no longer holds, so the current default stays
        if isinstance(e.get("default"), list) and default_blocking(dt, isa) not in (
                None, e["default"]):
            stale.append(key)
            continue
        try:
            _C.gemm_set_blocking(dt, isa, e["kc"], e["mc"], e["nc"])
        except (ValueError, TypeError):
            bad.append(key)
            continue
        _applied["entries"][key] = dict(kc=e["kc"], mc=e["mc"], nc=e["nc"])
        n += 1
    if bad and warn:
        warnings.warn("cengine: ignoring invalid entries %s of the GEMM tune file %s"
                      % (", ".join(bad), path), RuntimeWarning, stacklevel=2)
    if stale and warn:
        warnings.warn("cengine: ignoring entries %s of the GEMM tune file %s: tuned against "
                      "other default block sizes (run python -m cengine.tune again)"
                      % (", ".join(stale), path), RuntimeWarning, stacklevel=2)
    _applied["status"] = ("%d entr%s applied" % (n, "y" if n == 1 else "ies")) if n else \
        ("no entry for this CPU" if os.path.exists(path) else "no tune file")
    if stale:
        _applied["status"] += " (%d stale: %s)" % (len(stale), ", ".join(stale))
    return n


def status():
    """(path, status line, applied entries) of the tune file for show_config."""
    return _applied["path"] or cache_path(), _applied["status"], dict(_applied["entries"])


def _write_atomic(path, data):
    def dump(tmp):
        with open(tmp, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.write("\n")
    write_atomic(path, dump, makedirs=True)
