"""Checks of the Python binding, run as every rank of a job (chorus run -n 2 or more).

Exits 0 when every check holds on this rank; prints each failure.
"""

import array
import sys

import chorus

failures = []


def check(condition, what):
    if not condition:
        failures.append(what)
        print("FAIL rank %s: %s" % (comm.rank, what))


def raises(kind, code, needle, call):
    try:
        call()
    except kind as e:
        if code is not None and getattr(e, "code", None) != code:
                check(False, "%s: code %s" % (e, getattr(e, "code", None)))
        elif needle not in str(e):
            check(False, "message '%s' lacks '%s'" % (e, needle))
        return
    check(False, "no %s raised (wanted '%s')" % (kind.__name__, needle))


comm = chorus.Communicator.from_env()
n, r = comm.size, comm.rank
check(chorus.version() >= (0, 1, 0), "version")

# Buffer-protocol objects without NumPy: array.array and bytearray.
a = array.array("f", [float(r + 1)] * 1000)
comm.all_reduce(a)
check(all(v == n * (n + 1) / 2 for v in a), "array.array all-reduce in place")
ints = array.array("q", [r] * 7)
out = array.array("q", [0] * 7)
comm.all_reduce(ints, out, op="max")
check(list(out) == [n - 1] * 7, "int64 max out of place")
b = bytearray([r + 1] * 5)
gathered = bytearray(5 * n)
comm.all_gather(b, gathered)
check(list(gathered) == [k + 1 for k in range(n) for _ in range(5)], "bytearray all-gather as uint8")
comm.all_gather(bytes([r]), gathered[:0] if False else bytearray(n))  # read-only send buffers are accepted

# NumPy arrays of every NumPy-native type, and reduce-scatter, broadcast, reduce.
try:
    import numpy as np
except ImportError:
    np = None
    print("rank %d: NumPy not installed; NumPy checks skipped" % r)
if np is not None:
    for dtype in ["float32", "float64", "float16", "int8", "uint8", "int32", "uint32", "int64", "uint64"]:
        x = np.full(33, r + 1, dtype=dtype)
        comm.all_reduce(x, op="sum")
        check(np.all(x == n * (n + 1) // 2), "numpy %s all-reduce" % dtype)
    send = np.arange(n * 10, dtype=np.float32) + r
    mine = np.empty(10, dtype=np.float32)
    comm.reduce_scatter(send, mine)
    expected = (np.arange(n * 10, dtype=np.float32) * n + n * (n - 1) / 2)[r * 10:(r + 1) * 10]
    check(np.array_equal(mine, expected), "numpy reduce-scatter")
    w = np.full(16, float(r), dtype=np.float64)
    comm.broadcast(w, root=n - 1)
    check(np.all(w == n - 1), "numpy broadcast from the last rank")
    total = np.zeros(4, dtype=np.int32)
    comm.reduce(np.full(4, r, dtype=np.int32), total, op="sum", root=0)
    check(r != 0 or np.all(total == n * (n - 1) // 2), "numpy reduce to rank 0")
    # Shared arrays (chorusMemAlloc): blocks of 256 KiB, read in place by the other ranks.
    block = 64 * 1024
    shared_in = chorus.shared_array(block, dtype="float32")
    check(shared_in.shape == (block,) and np.all(shared_in == 0), "shared array zeroed")
    shared_in[:] = np.arange(block, dtype=np.float32) + 1000 * r
    shared_out = chorus.shared_array((n, block), dtype="float32")
    comm.all_gather(shared_in, shared_out)
    check(all(np.array_equal(shared_out[k], np.arange(block, dtype=np.float32) + 1000 * k) for k in range(n)),
          "all-gather between shared arrays")
    comm.all_reduce(shared_in, op="max")
    check(np.array_equal(shared_in, np.arange(block, dtype=np.float32) + 1000 * (n - 1)), "all-reduce of a shared array in place")
    comm.barrier()  # every rank has read the others' arrays before they are freed
    del shared_in, shared_out
    raises(ValueError, None, "negative", lambda: chorus.shared_array(-5))
    raises(chorus.ChorusError, 5, "available", lambda: chorus.shared_array(1 << 48, dtype="uint8"))
    raises(ValueError, None, "C-contiguous", lambda: comm.all_reduce(np.zeros((4, 4), dtype=np.float32)[:, 1]))
    raises(TypeError, None, "complex128", lambda: comm.all_reduce(np.zeros(4, dtype=np.complex128)))
    raises(ValueError, None, "needs", lambda: comm.all_gather(np.zeros(4, dtype=np.float32), np.zeros(3, dtype=np.float32)))

# Point-to-point in a group (a ring exchange that would deadlock without one), and split.
left, right = (r - 1) % n, (r + 1) % n
got = array.array("i", [0])
with chorus.group():
    comm.send(array.array("i", [r]), right)
    comm.recv(got, left)
check(got[0] == left, "ring exchange in a group")
halves = comm.split(r % 2)
check(halves is not None and halves.size == (n + 1 - r % 2) // 2, "split by parity")
check(comm.split(None) is None, "split with no color gives None")
if halves is not None:
    halves.close()

# A second communicator the NCCL way: rank 0 makes a unique id, the job's first communicator
# carries it to the others, everyone joins by rank with a timeout.
uid = bytearray(chorus.unique_id() if r == 0 else bytes(128))
comm.broadcast(uid, root=0)
check(uid.startswith(b"chorus1 "), "unique id text")
with chorus.Communicator(r, n, bytes(uid), timeout=60) as second:
    check((second.rank, second.size) == (r, n), "init by rank")
    x = array.array("d", [1.5] * 10)
    second.all_reduce(x)
    check(all(v == 1.5 * n for v in x), "all-reduce on the communicator made from a unique id")
raises(ValueError, None, "128 bytes", lambda: chorus.Communicator(r, n, b"short"))
raises(chorus.ChorusError, 1, "chorusGetUniqueId", lambda: chorus.Communicator(r, n, bytes(128)))

# Errors: raised with the library's message, the communicator still usable after refusals.
raises(TypeError, None, "buffer protocol", lambda: comm.all_reduce("not a buffer"))
raises(ValueError, None, "op 'median'", lambda: comm.all_reduce(a, op="median"))
raises(chorus.ChorusError, 1, "root", lambda: comm.broadcast(a, root=n + 5))
raises(chorus.ChorusError, 1, "peer", lambda: comm.send(a, peer=-4))
comm.barrier()
check(comm.async_error() is None, "no async error after refused calls")
handle = comm._handle
comm.close()
raises(chorus.ChorusError, 1, "not a live communicator", lambda: chorus._check(chorus._lib.chorusBarrier(handle)))

print("rank %d: %s" % (r, "python binding checks passed" if not failures else "%d FAILURES" % len(failures)))
sys.exit(1 if failures else 0)
