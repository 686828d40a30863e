import ChorusTransport
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One rank's POSIX shared-memory segment: its inbound rings (one per peer) and its header.
///
/// ## Layout
/// | offset | field |
/// |---|---|
/// | 0 | magic, ranks, owner rank, owner pid, ring bytes, peers may read the owner's memory directly, publication key of the owner's rings (UInt64 each) |
/// | 64 | doorbell: UInt32 futex word, bumped by every peer that writes to a ring here or frees space in a ring of the owner's |
/// | 128 | sleepers: Int64, the owner's threads asleep on the doorbell |
/// | 192 | aborted by: Int64 rank, or -1 |
/// | 256 | abort reason: length (UInt64), then UTF-8 bytes up to offset 2048 |
/// | 2048 | the CPUs the owner may run on: a bit mask of 1,024 CPUs in 16 UInt64 words (`sched_getaffinity`) |
/// | 4096 + k·(128 + ring) | the ring from the k-th peer (peers in rank order, skipping the owner): the sender-waiting flag (UInt64) at +8, tail (UInt64, written by the owner) at +64, the owner's read costs (two Float64 bit patterns, `RingCost`) at +72, data at +128 |
/// | after the rings, k·512 | acknowledgements from the k-th peer of the owner's direct-read sends: 64 slots of UInt64, slot `seq % 64` set to `seq + 1` |
///
/// ## Names and lifetime
/// `/chorus-<uid>-<pid>-<job>-<rank>`, mode 0600 (only the job's user can open it). Each rank
/// creates its own before rendezvous publishes it; once every rank has mapped every segment the
/// names are unlinked, so a crash later leaves nothing behind. A crash inside that window
/// leaves a name whose pid is dead: the next job's `removeStale` deletes it.
struct SharedSegment {
    static let magic: UInt64 = 0x4348_4F52_5553_4D31   // "CHORUSM1"
    static let headerBytes = 4096
    static let ringControlBytes = 128
    static let reasonOffset = 256
    static let cpuMaskOffset = 2048
    static let cpuMaskWords = 16

    // No stored string: a segment is copied out of arrays on every message, and a string
    // field made each copy a retain and a release.
    let job: UInt64
    let creatorPid: Int32
    var name: String { Self.name(job: job, rank: owner, pid: creatorPid) }
    let base: UnsafeMutableRawPointer
    let bytes: Int
    let ranks: Int
    let owner: Int
    let ringBytes: Int

    /// Ring bytes per peer for a job of `ranks` (a power of two; smaller for large jobs so the
    /// segments stay modest: `(ranks-1)` rings per segment, `ranks` segments per host).
    static func ringBytes(ranks: Int) -> Int {
        ranks <= 8 ? 1 << 20 : (ranks <= 32 ? 256 << 10 : 64 << 10)   // powers of two (`Ring.offset`)
    }

    static let ackSlots = 64

    static func segmentBytes(ranks: Int, ringBytes: Int) -> Int {
        headerBytes + max(ranks - 1, 0) * (ringControlBytes + ringBytes + ackSlots * 8)
    }

    static func name(job: UInt64, rank: Int, pid: Int32) -> String {
        "/chorus-\(getuid())-\(pid)-\(String(job, radix: 16))-\(rank)"
    }

    /// Creates and maps this rank's segment (after removing stale segments of dead jobs).
    static func create(job: UInt64, rank: Int, ranks: Int) throws -> SharedSegment {
        removeStale()
        let ring = ringBytes(ranks: ranks)
        let bytes = segmentBytes(ranks: ranks, ringBytes: ring)
        let name = name(job: job, rank: rank, pid: getpid())
        let fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Syscall.shmError("shm_open", "cannot create the shared-memory segment \(name)") }
        defer { close(fd) }
        guard ftruncate(fd, off_t(bytes)) == 0 else {
            let e = Syscall.shmError("ftruncate", "cannot size the shared-memory segment \(name) to \(bytes) bytes (is /dev/shm full?)")
            shm_unlink(name)
            throw e
        }
        // Sparse until `reserve`: before rendezvous a rank does not know whether the job is on
        // one host, and a job on several makes smaller segments for each host's ranks.
        guard let p = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), p != MAP_FAILED else {
            let e = Syscall.shmError("mmap", "cannot map the shared-memory segment \(name)")
            shm_unlink(name)
            throw e
        }
        let s = SharedSegment(job: job, creatorPid: getpid(), base: p, bytes: bytes, ranks: ranks, owner: rank, ringBytes: ring)
        s.word(1).pointee = UInt64(ranks)
        s.word(2).pointee = UInt64(rank)
        s.word(3).pointee = UInt64(getpid())
        s.word(4).pointee = UInt64(ring)
        s.word(5).pointee = directReadsWork() ? 1 : 0
        s.word(6).pointee = UInt64.random(in: 0...UInt64.max) | 1 << 63
        s.abortedBy.pointee.store(-1, ordering: .relaxed)
        _ = chorus_cpu_affinity(s.word(Self.cpuMaskOffset / 8), Int32(Self.cpuMaskWords))   // all zero if it fails
        s.word(0).pointee = magic   // last: a peer that sees the magic sees the rest
        return s
    }

    /// Reserves this rank's own segment's memory in /dev/shm and maps all of it here, once the
    /// job is to use it. A /dev/shm too small for the job (a container's is often 64 MiB) fails
    /// here, with the sizes, instead of as SIGBUS when a peer first writes a ring's far end; and
    /// the first lap through each ring takes no page faults (without this, one every 64 small
    /// messages: about 1,000 in the first 16,384 8-byte all-reduces of a 2-rank job).
    func reserve() throws {
        let name = Self.name(job: job, rank: owner, pid: creatorPid)
        let fd = shm_open(name, O_RDWR | O_CLOEXEC, 0)
        guard fd >= 0 else { throw Syscall.shmError("shm_open", "cannot open this rank's shared-memory segment \(name) to reserve it") }
        defer { close(fd) }
        let reserved = posix_fallocate(fd, 0, off_t(bytes))
        guard reserved == 0 else {
            throw TransportError(.connect, syscall: "posix_fallocate", code: reserved,
                                 "cannot reserve \(bytes) bytes for the shared-memory segment \(name): \(String(cString: strerror(reserved))); "
                                 + "a job of \(ranks) ranks on one host needs about \(ranks * bytes) bytes of /dev/shm\(Self.sharedMemoryFree().map { ", which has \($0) free" } ?? "") "
                                 + "(enlarge it, such as docker run --shm-size, or run fewer ranks per host)")
        }
        // Kernels before 5.14 lack MADV_POPULATE_WRITE; their pages then map on first use.
        _ = madvise(base, bytes, Self.populateWrite)
    }

    /// `MADV_POPULATE_WRITE` (Linux 5.14): map every page of a range, writable.
    static let populateWrite: Int32 = 23

    /// Bytes free in /dev/shm, or `nil` where it cannot be read.
    static func sharedMemoryFree() -> Int? {
        var fs = statvfs()
        guard statvfs("/dev/shm", &fs) == 0 else { return nil }
        return Int(fs.f_bavail) * Int(fs.f_frsize)
    }

    /// Maps a peer's segment, checking that it is what this job expects.
    static func open(job: UInt64, rank: Int, pid: Int32, ranks: Int) throws -> SharedSegment {
        let name = name(job: job, rank: rank, pid: pid)
        let fd = shm_open(name, O_RDWR | O_CLOEXEC, 0)
        guard fd >= 0 else {
            throw Syscall.shmError("shm_open", "cannot open rank \(rank)'s shared-memory segment \(name); do both ranks run as the same user with the same /dev/shm?", peer: rank)
        }
        defer { close(fd) }
        var st = stat()
        fstat(fd, &st)
        let ring = ringBytes(ranks: ranks)
        let bytes = segmentBytes(ranks: ranks, ringBytes: ring)
        guard Int(st.st_size) == bytes else {
            throw TransportError(.protocolViolation, peer: rank, "rank \(rank)'s shared-memory segment \(name) has \(st.st_size) bytes where \(bytes) were expected")
        }
        // Mapped in full at once, as the owner's own mapping (`reserve`).
        guard let p = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0), p != MAP_FAILED else {
            throw Syscall.shmError("mmap", "cannot map rank \(rank)'s shared-memory segment \(name)", peer: rank)
        }
        let s = SharedSegment(job: job, creatorPid: pid, base: p, bytes: bytes, ranks: ranks, owner: rank, ringBytes: ring)
        guard s.word(0).pointee == magic, s.word(1).pointee == UInt64(ranks), s.word(2).pointee == UInt64(rank) else {
            munmap(p, bytes)
            throw TransportError(.protocolViolation, peer: rank, "\(name) is not rank \(rank)'s segment of this \(ranks)-rank job")
        }
        return s
    }

    func unmap() { munmap(base, bytes) }

    /// Whether peers may read this process's memory with `process_vm_readv` (single-copy
    /// transfers). Off unless `CHORUS_SHM_DIRECT=1`: on the development VM a direct read of
    /// 64 MiB ran slower than two copies through the rings (all-gather busbw 2.40 against 2.63
    /// GB/s), since pinning remote pages costs more there than a copy. When asked for, the call
    /// must be allowed (seccomp may forbid it in containers) and Yama's ptrace scope must let
    /// siblings in (scope 1 is opened with `PR_SET_PTRACER_ANY`; scopes 2 and 3 are not).
    static func directReadsWork() -> Bool {
        guard let v = getenv("CHORUS_SHM_DIRECT"), String(cString: v) == "1" else { return false }
        var probe: UInt64 = 0x5EED, copy: UInt64 = 0
        let selfRead = withUnsafeMutablePointer(to: &probe) { p in
            chorus_cma_read(getpid(), &copy, UInt64(UInt(bitPattern: p)), 8)
        }
        guard selfRead == 0, copy == 0x5EED else { return false }
        guard let f = fopen("/proc/sys/kernel/yama/ptrace_scope", "r") else { return true }
        defer { fclose(f) }
        var scope: Int32 = 0
        guard fscanf_int(f, &scope) else { return true }
        if scope == 0 { return true }
        return scope == 1 && chorus_allow_peer_reads() == 0
    }

    /// How many CPUs the owners of `segments` may run on together: the union of their masks
    /// (a job pinned to fewer CPUs than it has ranks, by `taskset`, a cpuset or a launcher's
    /// binding, has fewer than the host's). 0 when no owner could read its mask.
    static func cpusUsable(by segments: [SharedSegment]) -> Int {
        var count = 0
        for w in 0..<cpuMaskWords {
            var union: UInt64 = 0
            for s in segments { union |= s.word(cpuMaskOffset / 8 + w).pointee }
            count += union.nonzeroBitCount
        }
        return count
    }

    /// Whether the owner accepts direct reads of its peers' memory (it reads; they allow).
    var acceptsDirectReads: Bool { word(5).pointee == 1 }

    /// The acknowledgement slots the peer `receiver` writes for the owner's direct-read sends.
    func ackSlots(from receiver: Int) -> UnsafeMutablePointer<Atomic<UInt64>> {
        let k = receiver < owner ? receiver : receiver - 1
        let start = Self.headerBytes + (ranks - 1) * (Self.ringControlBytes + ringBytes) + k * Self.ackSlots * 8
        return (base + start).assumingMemoryBound(to: Atomic<UInt64>.self)
    }
    func unlink() { shm_unlink(name) }

    /// Deletes `/dev/shm/chorus-<uid>-<pid>-…` segments whose creating process is gone.
    @discardableResult
    static func removeStale() -> Int {
        let prefix = "chorus-\(getuid())-"
        guard let dir = opendir("/dev/shm") else { return 0 }
        defer { closedir(dir) }
        var removed = 0
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard name.hasPrefix(prefix) else { continue }
            let rest = name.dropFirst(prefix.count)
            guard let dash = rest.firstIndex(of: "-"), let pid = Int32(rest[..<dash]) else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH {
                shm_unlink("/" + name)
                removed += 1
            }
        }
        return removed
    }

    // MARK: Fields

    func word(_ i: Int) -> UnsafeMutablePointer<UInt64> { (base + 8 * i).assumingMemoryBound(to: UInt64.self) }
    var pid: Int32 { Int32(truncatingIfNeeded: word(3).pointee) }
    var doorbell: UnsafeMutablePointer<Atomic<UInt32>> { (base + 64).assumingMemoryBound(to: Atomic<UInt32>.self) }
    var doorbellWord: UnsafeMutablePointer<UInt32> { (base + 64).assumingMemoryBound(to: UInt32.self) }
    var sleepers: UnsafeMutablePointer<Atomic<Int64>> { (base + 128).assumingMemoryBound(to: Atomic<Int64>.self) }
    var abortedBy: UnsafeMutablePointer<Atomic<Int64>> { (base + 192).assumingMemoryBound(to: Atomic<Int64>.self) }

    var abortReason: String {
        let length = min(Int(word(Self.reasonOffset / 8).pointee), Self.cpuMaskOffset - Self.reasonOffset - 8)
        return String(decoding: UnsafeRawBufferPointer(start: base + Self.reasonOffset + 8, count: max(length, 0)), as: UTF8.self)
    }

    func setAbortReason(_ text: String) {
        let bytes = Array(text.utf8.prefix(Self.cpuMaskOffset - Self.reasonOffset - 8))
        bytes.withUnsafeBytes { (base + Self.reasonOffset + 8).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        word(Self.reasonOffset / 8).pointee = UInt64(bytes.count)
    }

    /// The ring in this segment that `sender` writes.
    func ring(from sender: Int) -> Ring {
        let k = sender < owner ? sender : sender - 1
        let control = base + Self.headerBytes + k * (Self.ringControlBytes + ringBytes)
        return Ring(control: control, data: control + Self.ringControlBytes, capacity: ringBytes, key: word(6).pointee)
    }

    /// Bumps the owner's doorbell and wakes it if it sleeps (freed space in a ring of the
    /// owner's, a direct read acknowledged, an abort).
    func ring() {
        doorbell.pointee.add(1, ordering: .sequentiallyConsistent)
        if sleepers.pointee.load(ordering: .sequentiallyConsistent) > 0 { _ = chorus_futex_wake(doorbellWord) }
    }

    /// After publishing records in one of the owner's rings: wakes the owner only if it sleeps.
    /// A spinning owner watches its rings' next records itself (`Ring.published`), so the
    /// doorbell's cache line does not move on every message. The fence orders the records'
    /// publication before the read of `sleepers`; the owner raises `sleepers` (sequentially
    /// consistent) before it looks at its rings a last time, so either it sees the record or
    /// this sees it asleep.
    func wakeIfAsleep() {
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        if sleepers.pointee.load(ordering: .relaxed) > 0 {
            doorbell.pointee.add(1, ordering: .sequentiallyConsistent)
            _ = chorus_futex_wake(doorbellWord)
        }
    }
}

/// A single-producer, single-consumer byte ring in shared memory. Positions count bytes ever
/// written (the sender's head, kept in the sender's memory) and consumed (`tail`); records are
/// 64-byte aligned and never wrap (a pad record fills the end when the next record would not
/// fit).
///
/// A record is *published* by storing `(position + 1) ^ key` in its `published` word, last and
/// with release ordering: the receiver reads the word at its tail and consumes the record when
/// it holds that value for its tail. So a receiver learns of a message by reading the message's
/// own first cache line, which holds the whole record when the payload is at most 16 bytes,
/// instead of a head counter and then the record. A record of an earlier lap holds another
/// position; the zeroed ring holds 0, which no publication is (the key's top bit is set); the
/// key is random per segment, so a large record's payload left at a later record's place reads
/// as that record's publication only with probability 2⁻⁶⁴, whatever the data.
struct Ring {
    let control: UnsafeMutableRawPointer
    let data: UnsafeMutableRawPointer
    let capacity: Int
    /// The segment's publication key (its owner draws it at random).
    let key: UInt64

    var tail: UnsafeMutablePointer<Atomic<UInt64>> { (control + 64).assumingMemoryBound(to: Atomic<UInt64>.self) }
    /// Set by the sender when a record did not fit; the receiver rings the sender's doorbell
    /// after consuming only then (ringing after every drain woke a spinning sender for nothing
    /// and moved its doorbell's cache line on every message).
    var senderWaiting: UnsafeMutablePointer<Atomic<UInt64>> { (control + 8).assumingMemoryBound(to: Atomic<UInt64>.self) }
    /// The receiver's cost of copying fragments out, each way the sender can write them
    /// (`RingCost.words`), next to the tail: the receiver writes both.
    var readCost: RingCost {
        get {
            RingCost(words: ((control + 72).assumingMemoryBound(to: Atomic<UInt64>.self).pointee.load(ordering: .relaxed),
                             (control + 80).assumingMemoryBound(to: Atomic<UInt64>.self).pointee.load(ordering: .relaxed)))
        }
        nonmutating set {
            let (c, s) = newValue.words
            (control + 72).assumingMemoryBound(to: Atomic<UInt64>.self).pointee.store(c, ordering: .relaxed)
            (control + 80).assumingMemoryBound(to: Atomic<UInt64>.self).pointee.store(s, ordering: .relaxed)
        }
    }

    /// Record header: payload length (or `pad`, or `direct`), the message's total length,
    /// stream, tag, the published word, and for a fragment of a large message (at least
    /// `SharedMemoryTransport.streamingMessage` bytes) its layout word (`largeFragment`); the
    /// payload from byte 48, or a large fragment's from where its layout word says.
    static let headerBytes = 48
    static let publishedOffset = 32
    static let layoutOffset = 40

    /// A large fragment's layout word: bit 0 is 1 when it was written with streaming stores
    /// (`RingWriteMode`), bits 8 to 15 where its payload starts (48 to 111). The sender puts the
    /// payload at the offset within a cache line that its destination has (`payloadStart(
    /// matching:)`), so that the copies into and out of the ring run on whole lines, and the
    /// copy that writes both the ring and a send's carried copy reads its source once.
    static func largeFragment(streaming: Bool, payloadAt: Int) -> UInt64 { UInt64(payloadAt) << 8 | (streaming ? 1 : 0) }
    /// Where a large fragment's layout word says its payload starts (checked by the reader
    /// against `payloadStarts`), and whether it was written with streaming stores.
    static func payloadAt(layout: UInt64) -> Int { Int(truncatingIfNeeded: (layout >> 8) & 0xFF) }
    static func isStreaming(layout: UInt64) -> Bool { layout & 1 == 1 }
    static let payloadStarts = headerBytes...(headerBytes + 63)

    /// Where a large fragment's payload starts in its (64-byte aligned) record so that it lies
    /// at the same offset within a cache line as `address`.
    static func payloadStart(matching address: UnsafeRawPointer) -> Int {
        headerBytes + ((Int(bitPattern: address) &- headerBytes) & 63)
    }
    static let pad = UInt64.max
    /// A direct-read descriptor: the payload is the sender's address and sequence number.
    static let direct = UInt64.max - 1
    /// A shared-buffer descriptor: the payload is the buffer's id, the sequence number and the
    /// offset in the buffer (`SharedBuffers`).
    static let inBuffer = UInt64.max - 2

    static func recordBytes(payload: Int, at payloadAt: Int = headerBytes) -> Int { (payloadAt + payload + 63) & ~63 }

    /// The published word of the record at `record`.
    @inline(__always)
    static func published(_ record: UnsafeMutableRawPointer) -> UnsafeMutablePointer<Atomic<UInt64>> {
        (record + publishedOffset).assumingMemoryBound(to: Atomic<UInt64>.self)
    }

    /// Where `position` lies in the ring (the capacity is a power of two: a mask, not a division,
    /// which costs tens of cycles and runs several times per message).
    @inline(__always)
    func offset(of position: UInt64) -> Int { Int(position & UInt64(capacity &- 1)) }

    /// Publishes the record that starts at `position`, written in full.
    @inline(__always)
    func publish(at position: UInt64) {
        Ring.published(data + offset(of: position)).pointee.store((position + 1) ^ key, ordering: .releasing)
    }

    /// Whether the record at `tail` has been published.
    @inline(__always)
    func hasRecord(at tail: UInt64) -> Bool {
        Ring.published(data + offset(of: tail)).pointee.load(ordering: .acquiring) == (tail + 1) ^ key
    }
}

import CChorusSHM

/// Reads one integer from a small /proc file.
func fscanf_int(_ f: UnsafeMutablePointer<FILE>, _ value: inout Int32) -> Bool {
    var buffer = [CChar](repeating: 0, count: 32)
    guard fgets(&buffer, 32, f) != nil else { return false }
    let text = String(decoding: buffer.prefix { $0 != 0 && $0 != 10 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    guard let v = Int32(text) else { return false }
    value = v
    return true
}

extension Syscall {
    static func shmError(_ call: String, _ message: String, peer: Int? = nil) -> TransportError {
        TransportError(.connect, peer: peer, syscall: call, code: errno, message + ": " + String(cString: strerror(errno)))
    }
}
