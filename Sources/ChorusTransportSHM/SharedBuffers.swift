import ChorusCore
import ChorusTransport
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Memory for collective buffers that the other ranks on this host can read in place.
///
/// Each allocation is its own POSIX shared-memory object, `/chorus-<uid>-<pid>-buffer-<id>`
/// (mode 0600), mapped here. When a large message is sent from such a buffer over shared memory,
/// the sender puts only the buffer's id and the message's offset in the ring; the receiver maps
/// the buffer (once, then keeps the mapping) and copies or reduces straight from it into its
/// destination: one copy where the rings take two, and no cache line passes between the cores
/// twice. This is what `ncclMemAlloc` and buffer registration buy NCCL users, and what
/// `MPI_Win_allocate_shared` gives MPI ones.
///
/// ## Lifetime
/// `free` unmaps the buffer and removes its name. A peer that mapped it keeps its pages until it
/// next maps a buffer (it then drops every mapping whose name is gone), evicts it (each
/// transport keeps at most `mappingsPerPeer` per peer, least recently used out first) or closes.
/// A buffer's id is never reused, so a stale mapping is never read for a new buffer. The name of
/// a buffer whose process died without freeing it is removed by the next job on the host
/// (`SharedSegment.removeStale`: the pid in the name is gone).
///
/// The registry is process-wide: buffers outlive communicators and may be used with any of
/// them (over other transports they are ordinary memory).
public enum SharedBuffers {
    struct Entry: Sendable {
        /// The mapping's address (an integer: the registry is shared between threads).
        let base: UInt
        let bytes: Int
        let id: UInt64
    }

    private struct Registry {
        var entries: [Entry] = []
        var nextID: UInt64 = 1
    }

    private static let registry = Mutex(Registry())
    /// How many buffers are allocated (read without the lock on every large send: when zero,
    /// no lookup is needed).
    private static let live = Atomic<Int>(0)

    static func name(id: UInt64, pid: Int32) -> String { "/chorus-\(getuid())-\(pid)-buffer-\(id)" }

    /// Allocates `byteCount` bytes (page-aligned, zeroed) that peers on this host can read in
    /// place. The memory is reserved up front (`posix_fallocate`), so a full `/dev/shm` fails
    /// here, not later with SIGBUS on first touch; more than the host's available memory
    /// (`MemAvailable`) is refused before anything is reserved, since reserving it would get
    /// some process killed by the kernel instead.
    /// - Throws: `TransportError` naming the object and what the system refused.
    public static func allocate(byteCount: Int) throws -> UnsafeMutableRawBufferPointer {
        guard byteCount > 0 else {
            throw TransportError(.register, "cannot allocate a shared buffer of \(byteCount) bytes: the size must be positive")
        }
        if let available = HostMemory.available(), byteCount > available {
            throw TransportError(.register, "cannot allocate a shared buffer of \(byteCount) bytes: this host has \(available) bytes of memory available (MemAvailable in /proc/meminfo)")
        }
        let id = registry.withLock { r -> UInt64 in
            defer { r.nextID += 1 }
            return r.nextID
        }
        let name = Self.name(id: id, pid: getpid())
        let fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw failure("shm_open", "cannot create the shared buffer \(name)") }
        defer { close(fd) }
        let reserved = posix_fallocate(fd, 0, off_t(byteCount))
        guard reserved == 0 else {
            shm_unlink(name)
            throw TransportError(.register, syscall: "posix_fallocate", code: reserved,
                                 "cannot reserve \(byteCount) bytes for the shared buffer \(name) (is /dev/shm too small? `df -h /dev/shm`): \(String(cString: strerror(reserved)))")
        }
        guard let p = mmap(nil, byteCount, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), p != MAP_FAILED else {
            let e = failure("mmap", "cannot map the shared buffer \(name) of \(byteCount) bytes")
            shm_unlink(name)
            throw e
        }
        registry.withLock { $0.entries.append(Entry(base: UInt(bitPattern: p), bytes: byteCount, id: id)) }
        live.add(1, ordering: .relaxed)
        return UnsafeMutableRawBufferPointer(start: p, count: byteCount)
    }

    private static func failure(_ call: String, _ message: String) -> TransportError {
        TransportError(.register, syscall: call, code: errno, message + ": " + String(cString: strerror(errno)))
    }

    /// Frees a buffer `allocate` returned (`base` is its start).
    /// - Returns: false, changing nothing, when `base` is not the start of a live shared buffer.
    @discardableResult
    public static func free(_ base: UnsafeMutableRawPointer) -> Bool {
        guard let entry = registry.withLock({ r -> Entry? in
            guard let i = r.entries.firstIndex(where: { $0.base == UInt(bitPattern: base) }) else { return nil }
            return r.entries.remove(at: i)
        }) else { return false }
        live.subtract(1, ordering: .relaxed)
        munmap(base, entry.bytes)
        shm_unlink(name(id: entry.id, pid: getpid()))
        return true
    }

    /// The buffer holding `bytes` bytes from `pointer`, and where they start in it; `nil` when
    /// they do not lie wholly inside one live shared buffer.
    static func locate(_ pointer: UnsafeRawPointer, bytes: Int) -> (id: UInt64, offset: Int)? {
        guard live.load(ordering: .relaxed) > 0 else { return nil }
        let address = UInt(bitPattern: pointer)
        return registry.withLock { r in
            for e in r.entries where address >= e.base {
                let offset = Int(address - e.base)
                if offset <= e.bytes - bytes { return (e.id, offset) }
            }
            return nil
        }
    }
}

/// A peer's shared buffer, mapped by a receiver.
struct MappedBuffer {
    let base: UnsafeMutableRawPointer
    let bytes: Int
    /// Kept open to learn when the owner frees the buffer (its name is removed).
    let fd: Int32
    var lastUse: UInt64

    /// Maps buffer `id` of the process `pid` (read only), its page tables filled at once
    /// (`MAP_POPULATE`: one walk instead of a fault per page on the first copy).
    static func map(id: UInt64, pid: Int32, peer: Int) throws -> MappedBuffer {
        let name = SharedBuffers.name(id: id, pid: pid)
        let fd = shm_open(name, O_RDONLY | O_CLOEXEC, 0)
        guard fd >= 0 else {
            throw Syscall.shmError("shm_open", "cannot open rank \(peer)'s shared buffer \(name) (freed while a collective read it?)", peer: peer)
        }
        var mapped = false
        defer { if !mapped { close(fd) } }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_size > 0 else {
            throw Syscall.shmError("fstat", "cannot size rank \(peer)'s shared buffer \(name)", peer: peer)
        }
        let bytes = Int(st.st_size)
        guard let p = mmap(nil, bytes, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0), p != MAP_FAILED else {
            throw Syscall.shmError("mmap", "cannot map rank \(peer)'s shared buffer \(name) of \(bytes) bytes", peer: peer)
        }
        mapped = true
        return MappedBuffer(base: p, bytes: bytes, fd: fd, lastUse: 0)
    }

    /// Whether the owner has freed the buffer (removed its name).
    var isFreed: Bool {
        var st = stat()
        return fstat(fd, &st) == 0 && st.st_nlink == 0
    }

    func unmap() {
        munmap(base, bytes)
        close(fd)
    }
}
