/// Memory registrations kept across calls, keyed by address range, as NCCL and UCX keep them:
/// registering pins pages and costs tens of microseconds per megabyte, so a buffer a training
/// loop passes on every step is registered once.
///
/// A lookup hits when a cached registration covers the whole range asked for. A miss registers
/// the range (rounded out to pages, so neighbouring small buffers share one) and evicts the least
/// recently used registrations beyond `capacity` entries that no request in flight holds.
/// `invalidate` drops every registration overlapping a range (call it before memory is freed:
/// a stale registration of reused memory would send the old pages).
public struct RegistrationCache<Registration> {
    public struct Entry {
        public var base: UInt
        public var length: Int
        public var registration: Registration
        var lastUse: UInt64
        var holds: Int
    }

    private var entries: [Entry] = []
    private var clock: UInt64 = 0
    public let capacity: Int
    public let pageSize: Int
    public private(set) var hits = 0
    public private(set) var misses = 0

    public init(capacity: Int = 1024, pageSize: Int = 4096) {
        precondition(capacity > 0 && pageSize > 0 && pageSize & (pageSize - 1) == 0)
        self.capacity = capacity
        self.pageSize = pageSize
    }

    public var count: Int { entries.count }

    /// The registration covering `[base, base + length)`, registering it with `register` (given
    /// the page-rounded range) on a miss; `deregister` receives evicted registrations. The entry is
    /// held until `release` with the same range.
    public mutating func acquire(base: UInt, length: Int, register: (UInt, Int) throws -> Registration,
                                 deregister: (Registration) -> Void) rethrows -> Registration {
        clock += 1
        let end = base + UInt(max(length, 1))
        if let i = entries.firstIndex(where: { $0.base <= base && $0.base + UInt($0.length) >= end }) {
            hits += 1
            entries[i].lastUse = clock
            entries[i].holds += 1
            return entries[i].registration
        }
        misses += 1
        let mask = UInt(pageSize - 1)
        let start = base & ~mask
        let stop = (end + mask) & ~mask
        let registration = try register(start, Int(stop - start))
        entries.append(Entry(base: start, length: Int(stop - start), registration: registration, lastUse: clock, holds: 1))
        evict(deregister: deregister)
        return registration
    }

    /// Ends one hold taken by `acquire` of a range inside the entry.
    public mutating func release(base: UInt, length: Int) {
        let end = base + UInt(max(length, 1))
        if let i = entries.firstIndex(where: { $0.base <= base && $0.base + UInt($0.length) >= end && $0.holds > 0 }) {
            entries[i].holds -= 1
        }
    }

    /// Drops every registration overlapping `[base, base + length)`, held or not (the memory is
    /// going away).
    public mutating func invalidate(base: UInt, length: Int, deregister: (Registration) -> Void) {
        let end = base + UInt(max(length, 1))
        entries.removeAll { e in
            let overlaps = e.base < end && base < e.base + UInt(e.length)
            if overlaps { deregister(e.registration) }
            return overlaps
        }
    }

    /// Drops the registrations overlapping `[base, base + length)` that nothing holds (for
    /// callers that cannot promise to `invalidate` before freeing memory).
    public mutating func dropUnheld(base: UInt, length: Int, deregister: (Registration) -> Void) {
        let end = base + UInt(max(length, 1))
        entries.removeAll { e in
            let drop = e.holds == 0 && e.base < end && base < e.base + UInt(e.length)
            if drop { deregister(e.registration) }
            return drop
        }
    }

    /// Drops everything.
    public mutating func removeAll(deregister: (Registration) -> Void) {
        for e in entries { deregister(e.registration) }
        entries.removeAll()
    }

    private mutating func evict(deregister: (Registration) -> Void) {
        while entries.count > capacity {
            guard let victim = entries.indices.filter({ entries[$0].holds == 0 }).min(by: { entries[$0].lastUse < entries[$1].lastUse }) else {
                return  // everything is in use: keep them all
            }
            deregister(entries[victim].registration)
            entries.remove(at: victim)
        }
    }
}
