"""Chorus from Python: a pure-Python binding over the C API (libChorusC.so, include/chorus.h).

    import numpy as np, chorus
    comm = chorus.Communicator.from_env()        # under torchrun, mpirun, srun or `chorus run`
    grads = np.ones(1 << 20, dtype=np.float32)
    comm.all_reduce(grads, op="avg")              # in place
    shards = np.empty(grads.size // comm.size, dtype=np.float32)
    comm.reduce_scatter(grads, shards)
    comm.close()

Buffers are NumPy arrays (C-contiguous) or any object with the buffer protocol whose format
is a machine number (array.array, memoryview, bytearray as uint8, ...). `shared_array(shape,
dtype)` makes a NumPy array that the other ranks on this host read in place (chorusMemAlloc):
over shared memory, large messages from it move with one copy instead of two. Counts follow NCCL:
all_gather sends `count` and receives size x count; reduce_scatter sends size x count and
receives `count`. Errors raise ChorusError (with .code and the library's message).

The library is found at $CHORUS_LIBRARY, else next to an installed copy of this file
(Tools/install-c-api.sh puts it in PREFIX/lib/python, the library in PREFIX/lib), else by the
dynamic loader's search (LD_LIBRARY_PATH, the loader's cache), else in this checkout's
.build/release or .build/debug.
"""

import ctypes
import os
import threading
from contextlib import contextmanager

__all__ = ["Communicator", "ChorusError", "group", "shared_array", "unique_id", "version", "DATA_TYPES", "OPS"]

# chorusResult_t
_RESULT_NAMES = ["success", "invalid argument", "mismatch", "timeout", "aborted", "transport error",
                 "rendezvous error", "configuration error", "unsupported", "internal error"]
# chorusDataType_t, by the names NumPy and nccl-tests use.
DATA_TYPES = {"float32": 0, "float64": 1, "float16": 2, "bfloat16": 3, "int8": 4, "uint8": 5,
              "int32": 6, "uint32": 7, "int64": 8, "uint64": 9}
_SIZES = {0: 4, 1: 8, 2: 2, 3: 2, 4: 1, 5: 1, 6: 4, 7: 4, 8: 8, 9: 8}
# chorusRedOp_t
OPS = {"sum": 0, "prod": 1, "min": 2, "max": 3, "avg": 4}
# struct-module format characters of buffer-protocol objects, by (format, itemsize).
_FORMATS = {("f", 4): 0, ("d", 8): 1, ("e", 2): 2, ("b", 1): 4, ("B", 1): 5, ("c", 1): 5,
            ("i", 4): 6, ("I", 4): 7, ("l", 8): 8, ("q", 8): 8, ("L", 8): 9, ("Q", 8): 9,
            ("l", 4): 6, ("L", 4): 7, ("h", 2): None, ("H", 2): None}


class ChorusError(RuntimeError):
    """A failed call: `code` is the chorusResult_t, the message says what was wrong and where."""

    def __init__(self, code, message):
        self.code = code
        name = _RESULT_NAMES[code] if 0 <= code < len(_RESULT_NAMES) else "error %d" % code
        super().__init__("%s: %s" % (name, message))


def _load():
    candidates = []
    if os.environ.get("CHORUS_LIBRARY"):
        candidates.append(os.environ["CHORUS_LIBRARY"])
    here = os.path.dirname(os.path.abspath(__file__))
    candidates.append(os.path.join(os.path.dirname(here), "libChorusC.so"))  # PREFIX/lib/python -> PREFIX/lib
    candidates.append("libChorusC.so")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for build in ("release", "debug"):
        candidates.append(os.path.join(root, ".build", build, "libChorusC.so"))
    errors = []
    for path in candidates:
        try:
            return ctypes.CDLL(path)
        except OSError as e:
            errors.append("%s: %s" % (path, e))
    raise ImportError("chorus: cannot load libChorusC.so (set CHORUS_LIBRARY to its path, or build it with "
                      "'swift build -c release --product ChorusC'); tried " + "; ".join(errors))


_lib = _load()
_c = ctypes
_comm_t = _c.c_void_p
_lib.chorusGetErrorString.restype = _c.c_char_p
_lib.chorusGetErrorString.argtypes = [_c.c_int]
_lib.chorusGetLastError.restype = _c.c_char_p
_lib.chorusGetLastError.argtypes = []
_signatures = {
    "chorusGetVersion": [_c.POINTER(_c.c_int)],
    "chorusGetUniqueId": [_c.c_char_p],
    "chorusCommInitRank": [_c.POINTER(_comm_t), _c.c_int, _c.c_char_p, _c.c_int, _c.c_double],
    "chorusCommInitFromEnv": [_c.POINTER(_comm_t)],
    "chorusCommSplit": [_comm_t, _c.c_int, _c.c_int, _c.POINTER(_comm_t)],
    "chorusCommDestroy": [_comm_t],
    "chorusCommAbort": [_comm_t],
    "chorusCommGetAsyncError": [_comm_t, _c.POINTER(_c.c_int)],
    "chorusCommCount": [_comm_t, _c.POINTER(_c.c_int)],
    "chorusCommUserRank": [_comm_t, _c.POINTER(_c.c_int)],
    "chorusAllReduce": [_c.c_void_p, _c.c_void_p, _c.c_size_t, _c.c_int, _c.c_int, _comm_t],
    "chorusAllGather": [_c.c_void_p, _c.c_void_p, _c.c_size_t, _c.c_int, _comm_t],
    "chorusReduceScatter": [_c.c_void_p, _c.c_void_p, _c.c_size_t, _c.c_int, _c.c_int, _comm_t],
    "chorusBroadcast": [_c.c_void_p, _c.c_void_p, _c.c_size_t, _c.c_int, _c.c_int, _comm_t],
    "chorusReduce": [_c.c_void_p, _c.c_void_p, _c.c_size_t, _c.c_int, _c.c_int, _c.c_int, _comm_t],
    "chorusSend": [_c.c_void_p, _c.c_size_t, _c.c_int, _c.c_int, _comm_t],
    "chorusRecv": [_c.c_void_p, _c.c_size_t, _c.c_int, _c.c_int, _comm_t],
    "chorusBarrier": [_comm_t],
    "chorusMemAlloc": [_c.POINTER(_c.c_void_p), _c.c_size_t],
    "chorusMemFree": [_c.c_void_p],
    "chorusGroupStart": [],
    "chorusGroupEnd": [],
}
for _name, _args in _signatures.items():
    _f = getattr(_lib, _name)
    _f.argtypes = _args
    _f.restype = _c.c_int


def _check(code):
    if code != 0:
        raise ChorusError(code, (_lib.chorusGetLastError() or b"").decode("utf-8", "replace"))


def version():
    """The loaded library's version as (major, minor, patch)."""
    v = _c.c_int()
    _check(_lib.chorusGetVersion(_c.byref(v)))
    return (v.value // 10000, v.value // 100 % 100, v.value % 100)


def unique_id():
    """A new rendezvous (bytes) for a job whose rank 0 runs here; send it to every rank."""
    buf = _c.create_string_buffer(128)
    _check(_lib.chorusGetUniqueId(buf))
    return buf.raw


class _SharedMemory:
    """One chorusMemAlloc allocation, freed when the last array over it goes."""

    def __init__(self, nbytes):
        self.address = None
        address = _c.c_void_p()
        _check(_lib.chorusMemAlloc(_c.byref(address), nbytes))
        self.address = address.value

    def __del__(self):
        if self.address:
            _lib.chorusMemFree(_c.c_void_p(self.address))
            self.address = None


def shared_array(shape, dtype="float32"):
    """A zeroed NumPy array in memory the other ranks on this host read in place (chorusMemAlloc):
    over shared memory, collectives from it move large messages with one copy instead of two.
    Freed when the array and every view of it are gone; keep it alive while a call uses it."""
    import numpy as np
    dt = np.dtype(dtype)
    count = int(np.prod(shape, dtype=np.int64))
    if count < 0:
        raise ValueError("shape %r: sizes cannot be negative" % (shape,))
    nbytes = max(count * dt.itemsize, 1)
    memory = _SharedMemory(nbytes)
    raw = (_c.c_ubyte * nbytes).from_address(memory.address)
    raw.owner = memory  # the array's base is `raw`, which keeps the allocation alive
    return np.frombuffer(raw, dtype=dt, count=count).reshape(shape)


_group = threading.local()  # depth of group() on this thread, and the buffers its calls use


def _keep(*buffers):
    """Inside a group the library records pointers and runs the calls at the end: keep the
    objects (and any copies made for them) alive until then."""
    if getattr(_group, "depth", 0) > 0:
        _group.keep.extend(buffers)


class _Buffer:
    """Address, element count and chorusDataType_t of a NumPy array or buffer-protocol object."""

    __slots__ = ("address", "count", "dtype", "keep")

    def __init__(self, obj, writable, what):
        self.keep = obj
        interface = getattr(obj, "__array_interface__", None)
        if interface is not None:  # NumPy (and array libraries that speak its interface)
            if interface.get("strides") is not None and not getattr(obj, "flags", {"C_CONTIGUOUS": False})["C_CONTIGUOUS"]:
                raise ValueError("%s must be C-contiguous" % what)
            name = str(getattr(obj, "dtype", ""))
            if name not in DATA_TYPES:
                raise TypeError("%s has dtype %s; Chorus takes %s" % (what, name, ", ".join(DATA_TYPES)))
            address, readonly = interface["data"]
            if writable and readonly:
                raise ValueError("%s is read-only" % what)
            self.address, self.count, self.dtype = address, int(obj.size), DATA_TYPES[name]
            return
        try:
            view = memoryview(obj)
        except TypeError:
            raise TypeError("%s is neither a NumPy array nor an object with the buffer protocol (got %s)"
                            % (what, type(obj).__name__)) from None
        if not view.c_contiguous:
            raise ValueError("%s must be C-contiguous" % what)
        dtype = _FORMATS.get((view.format.lstrip("@=<"), view.itemsize))
        if dtype is None:
            raise TypeError("%s has format '%s' (itemsize %d), which is not a Chorus data type"
                            % (what, view.format, view.itemsize))
        if writable and view.readonly:
            raise ValueError("%s is read-only" % what)
        if view.readonly:  # a read-only send buffer: Chorus only reads it, but ctypes needs a copy
            view = memoryview(bytearray(view.tobytes())).cast(view.format)
        self.keep = view
        self.address = _c.addressof(_c.c_char.from_buffer(view)) if view.nbytes > 0 else 0
        self.count = view.nbytes // view.itemsize
        self.dtype = dtype


def _op(op):
    if op not in OPS:
        raise ValueError("op %r: expected one of %s" % (op, ", ".join(OPS)))
    return OPS[op]


class Communicator:
    """A rank's membership of a job; use `from_env()` or `Communicator(rank, size, uid)`."""

    def __init__(self, rank=None, size=None, uid=None, timeout=0.0, _handle=None):
        if _handle is not None:
            self._handle = _handle
        else:
            if rank is None or size is None or uid is None:
                raise ValueError("Communicator(rank, size, uid) needs all three; or use Communicator.from_env()")
            if not isinstance(uid, (bytes, bytearray)) or len(uid) != 128:
                raise ValueError("uid must be the 128 bytes unique_id() returned")
            handle = _comm_t()
            _check(_lib.chorusCommInitRank(_c.byref(handle), int(size), bytes(uid), int(rank), float(timeout)))
            self._handle = handle
        r, s = _c.c_int(), _c.c_int()
        _check(_lib.chorusCommUserRank(self._handle, _c.byref(r)))
        _check(_lib.chorusCommCount(self._handle, _c.byref(s)))
        self.rank, self.size = r.value, s.value
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls):
        """Joins the job the launcher's environment describes (torchrun, mpirun, srun, chorus run)."""
        handle = _comm_t()
        _check(_lib.chorusCommInitFromEnv(_c.byref(handle)))
        return cls(_handle=handle)

    # Collectives -------------------------------------------------------------------------
    def all_reduce(self, send, recv=None, op="sum"):
        """recv = reduction of every rank's send (in place when recv is None or is send)."""
        s = _Buffer(send, recv is None or recv is send, "send")
        r = s if recv is None or recv is send else _Buffer(recv, True, "recv")
        self._same(s, r, s.count)
        _keep(s, r)
        _check(_lib.chorusAllReduce(s.address, r.address, s.count, s.dtype, _op(op), self._handle))
        return recv if recv is not None else send

    def all_gather(self, send, recv):
        """recv (size x len(send)) = every rank's send, in rank order."""
        s, r = _Buffer(send, False, "send"), _Buffer(recv, True, "recv")
        self._same(s, r, s.count * self.size)
        _keep(s, r)
        _check(_lib.chorusAllGather(s.address, r.address, s.count, s.dtype, self._handle))
        return recv

    def reduce_scatter(self, send, recv, op="sum"):
        """recv = this rank's block of the reduction of every rank's send (size x len(recv))."""
        s, r = _Buffer(send, False, "send"), _Buffer(recv, True, "recv")
        if s.count != r.count * self.size:
            raise ValueError("reduce_scatter: send has %d elements; it needs size x len(recv) = %d" % (s.count, r.count * self.size))
        if s.dtype != r.dtype:
            raise TypeError("send and recv must have the same data type")
        _keep(s, r)
        _check(_lib.chorusReduceScatter(s.address, r.address, r.count, s.dtype, _op(op), self._handle))
        return recv

    def broadcast(self, buf, root=0, recv=None):
        """The root's buf to every rank (into recv if given, else in place)."""
        s = _Buffer(buf, recv is None, "buf")
        r = s if recv is None else _Buffer(recv, True, "recv")
        self._same(s, r, s.count)
        _keep(s, r)
        _check(_lib.chorusBroadcast(s.address, r.address, s.count, s.dtype, int(root), self._handle))
        return recv if recv is not None else buf

    def reduce(self, send, recv=None, op="sum", root=0):
        """recv on the root = reduction of every rank's send (in place when recv is None)."""
        s = _Buffer(send, recv is None, "send")
        r = s if recv is None else _Buffer(recv, True, "recv")
        self._same(s, r, s.count)
        _keep(s, r)
        _check(_lib.chorusReduce(s.address, r.address, s.count, s.dtype, _op(op), int(root), self._handle))
        return recv if recv is not None else send

    def send(self, buf, peer):
        b = _Buffer(buf, False, "buf")
        _keep(b)
        _check(_lib.chorusSend(b.address, b.count, b.dtype, int(peer), self._handle))

    def recv(self, buf, peer):
        b = _Buffer(buf, True, "buf")
        _keep(b)
        _check(_lib.chorusRecv(b.address, b.count, b.dtype, int(peer), self._handle))
        return buf

    def barrier(self):
        _check(_lib.chorusBarrier(self._handle))

    # Communicators -----------------------------------------------------------------------
    def split(self, color, key=None):
        """Ranks of one color form a new communicator (None for color=None)."""
        handle = _comm_t()
        _check(_lib.chorusCommSplit(self._handle, -1 if color is None else int(color),
                                    self.rank if key is None else int(key), _c.byref(handle)))
        return Communicator(_handle=handle) if handle.value else None

    def abort(self):
        """Calls in flight on every rank return ChorusError(aborted); safe from any thread."""
        _check(_lib.chorusCommAbort(self._handle))

    def async_error(self):
        """The ChorusError that poisoned this communicator, or None."""
        code = _c.c_int()
        _check(_lib.chorusCommGetAsyncError(self._handle, _c.byref(code)))
        return None if code.value == 0 else ChorusError(code.value, "the communicator failed earlier")

    def close(self):
        with self._lock:
            if self._handle is not None:
                handle, self._handle = self._handle, None
                _check(_lib.chorusCommDestroy(handle))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _same(self, s, r, needed):
        if s.dtype != r.dtype:
            raise TypeError("send and recv must have the same data type")
        if r.count < needed:
            raise ValueError("recv has %d elements; it needs %d" % (r.count, needed))


@contextmanager
def group():
    """Calls inside run together at the end (NCCL's group start/end); the buffers they use are
    kept alive until then."""
    if getattr(_group, "depth", 0) == 0:
        _group.depth, _group.keep = 0, []
    _check(_lib.chorusGroupStart())
    _group.depth += 1
    try:
        yield
    finally:
        _group.depth -= 1
        try:
            _check(_lib.chorusGroupEnd())
        finally:
            if _group.depth == 0:
                _group.keep = []
