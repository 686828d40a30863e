import ChorusCore
import ChorusTopology

/// Flows sharing capacity max-min fairly (progressive filling), recomputed only where
/// something changed.
///
/// A *resource* is one direction of a link (an arc) or one direction of a NIC whose line rate
/// the topology gives. A flow crosses resources with a share each (1 on a single path; a
/// fraction on each branch of a sprayed multipath route), so a flow at rate `r` puts `r·share`
/// on each. Rates are max-min fair with these weights: no flow can go faster without slowing a
/// flow that is no faster than it.
///
/// The allocation splits over connected components of the flow–resource graph, so when flows
/// start or end only their components are recomputed (`reallocate`), and all changes of one
/// instant are recomputed together: the flows of a symmetric step start and end at one instant
/// and cost one recomputation.
struct FlowNetwork {
    /// Bytes per picosecond each resource carries.
    let capacity: [Double]
    /// Active flows on each resource (finished flows are dropped lazily, on the next visit).
    private var flowsOn: [[Int32]]
    /// Bytes each resource carried, for utilisation.
    private(set) var carried: [Double]

    // Flows, by id (ids are recycled).
    private(set) var remaining: [Double] = []
    private(set) var rate: [Double] = []
    private var updatedAt: [Picoseconds] = []
    private(set) var version: [UInt32] = []
    private var active: [Bool] = []
    private var routeOf: [Int32] = []
    /// The rate the current recomputation gave each flow.
    private var assigned: [Double] = []
    private var freeIDs: [Int32] = []

    /// Resources of each route, flat: route `k` owns `routeResources[routeStart[k] ..< routeStart[k+1]]`.
    private(set) var routeStart: [Int32] = [0]
    private var routeResources: [Int32] = []
    private var routeShares: [Double] = []

    // Scratch for recomputation.
    private var dirty: [Int32] = []
    private var stamp: [UInt32]
    private var flowStamp: [UInt32] = []
    private var generation: UInt32 = 0
    private var frozenLoad: [Double]
    private var weight: [Double]
    private var heapVersion: [UInt32]
    private var componentFlows: [Int32] = []
    private var levelHeap = LevelHeap()
    private var componentEnds: [Int] = []
    private var bfsQueue: [Int32] = []
    /// When each flow would drain at its current rate.
    private var drainAt: [Picoseconds] = []
    private var componentResources: [Int32] = []

    init(capacities: [Double]) {
        capacity = capacities
        flowsOn = Array(repeating: [], count: capacities.count)
        carried = Array(repeating: 0, count: capacities.count)
        stamp = Array(repeating: 0, count: capacities.count)
        frozenLoad = Array(repeating: 0, count: capacities.count)
        weight = Array(repeating: 0, count: capacities.count)
        heapVersion = Array(repeating: 0, count: capacities.count)
    }

    var resourceCount: Int { capacity.count }

    /// Registers a route (resources with shares); returns its index.
    mutating func addRoute(_ resources: [(Int32, Double)]) -> Int32 {
        for (r, s) in resources {
            routeResources.append(r)
            routeShares.append(s)
        }
        routeStart.append(Int32(routeResources.count))
        return Int32(routeStart.count - 2)
    }

    func resources(ofRoute k: Int32) -> Range<Int> { Int(routeStart[Int(k)])..<Int(routeStart[Int(k) + 1]) }
    func resource(at j: Int) -> Int32 { routeResources[j] }
    func share(at j: Int) -> Double { routeShares[j] }

    /// Starts a flow of `bytes` on route `route` at `now`; its rate is set by the next `reallocate`.
    mutating func start(bytes: Double, route: Int32, now: Picoseconds) -> Int32 {
        let id: Int32
        if let reused = freeIDs.popLast() {
            id = reused
            remaining[Int(id)] = bytes
            rate[Int(id)] = 0
            updatedAt[Int(id)] = now
            version[Int(id)] &+= 1
            active[Int(id)] = true
            routeOf[Int(id)] = route
        } else {
            id = Int32(remaining.count)
            remaining.append(bytes)
            rate.append(0)
            updatedAt.append(now)
            version.append(0)
            active.append(true)
            routeOf.append(route)
            flowStamp.append(0)
            assigned.append(0)
            drainAt.append(.max)
        }
        for j in resources(ofRoute: route) {
            let r = Int(routeResources[j])
            flowsOn[r].append(id)
            dirty.append(Int32(r))
        }
        return id
    }

    /// Ends a drained flow: its bytes count as carried, its resources are freed at the next `reallocate`.
    mutating func finish(_ id: Int32, bytes: Double) {
        active[Int(id)] = false
        remaining[Int(id)] = 0
        rate[Int(id)] = 0
        version[Int(id)] &+= 1
        for j in resources(ofRoute: routeOf[Int(id)]) {
            let r = Int(routeResources[j])
            carried[r] += bytes * routeShares[j]
            dirty.append(Int32(r))
        }
    }

    /// Makes a finished flow's id reusable (after its delivery no longer needs it).
    mutating func release(_ id: Int32) { freeIDs.append(id) }

    var hasChanges: Bool { !dirty.isEmpty }

    /// Recomputes the max-min rates of every component touched since the last call, as of `now`,
    /// and reports, per component, the flows that drain first (with that time and their new
    /// version) through `drains`: the caller schedules an event for each.
    mutating func reallocate(now: Picoseconds, _ drains: (_ flow: Int32, _ drainAt: Picoseconds, _ version: UInt32) -> Void) {
        guard !dirty.isEmpty else { return }
        generation &+= 1
        if generation == 0 {
            for i in stamp.indices { stamp[i] = 0 }
            for i in flowStamp.indices { flowStamp[i] = 0 }
            generation = 1
        }
        let gen = generation
        componentFlows.removeAll(keepingCapacity: true)
        componentResources.removeAll(keepingCapacity: true)
        // Breadth-first over resources and flows, one component at a time, compacting finished
        // flows away. `componentEnds[c]` is where component c's flows end in `componentFlows`.
        var seeds: [Int32] = []
        swap(&seeds, &dirty)
        var queue: [Int32] = []
        swap(&queue, &bfsQueue)
        defer {
            seeds.removeAll(keepingCapacity: true)
            swap(&seeds, &dirty)
            queue.removeAll(keepingCapacity: true)
            swap(&queue, &bfsQueue)
        }
        componentEnds.removeAll(keepingCapacity: true)
        for seed in seeds where stamp[Int(seed)] != gen {
            queue.removeAll(keepingCapacity: true)
            queue.append(seed)
            var head = 0
            while head < queue.count {
                let r = Int(queue[head])
                head += 1
                if stamp[r] == gen { continue }
                stamp[r] = gen
                componentResources.append(Int32(r))
                var list: [Int32] = []
                swap(&list, &flowsOn[r])  // move out and back: no copy
                var kept = 0
                for f in list where active[Int(f)] {
                    list[kept] = f
                    kept += 1
                    if flowStamp[Int(f)] != gen {
                        flowStamp[Int(f)] = gen
                        componentFlows.append(f)
                        for j in resources(ofRoute: routeOf[Int(f)]) where stamp[Int(routeResources[j])] != gen {
                            queue.append(routeResources[j])
                        }
                    }
                }
                list.removeLast(list.count - kept)
                swap(&list, &flowsOn[r])
            }
            if componentEnds.last ?? 0 != componentFlows.count { componentEnds.append(componentFlows.count) }
        }
        guard !componentFlows.isEmpty else { return }

        // Bring every flow of the components up to `now` at its old rate.
        for f in componentFlows {
            let i = Int(f)
            let elapsed = Double(now - updatedAt[i])
            if elapsed > 0 { remaining[i] = max(0, remaining[i] - rate[i] * elapsed) }
            updatedAt[i] = now
        }

        // Progressive filling: every unfrozen flow runs at `level`; the resource that saturates
        // first freezes its flows at that level.
        for r in componentResources {
            frozenLoad[Int(r)] = 0
            weight[Int(r)] = 0
        }
        for f in componentFlows {
            for j in resources(ofRoute: routeOf[Int(f)]) { weight[Int(routeResources[j])] += routeShares[j] }
        }
        var heap = LevelHeap()
        swap(&heap, &levelHeap)
        defer {
            heap.removeAll()
            swap(&heap, &levelHeap)
        }
        for r in componentResources where weight[Int(r)] > 0 {
            heapVersion[Int(r)] &+= 1
            heap.push(level: capacity[Int(r)] / weight[Int(r)], resource: r, version: heapVersion[Int(r)])
        }
        var frozen = 0
        // `flowStamp == gen` marks a component flow not yet frozen; freezing sets it to 0 and
        // the loop below restores it.
        while frozen < componentFlows.count, let top = heap.pop() {
            let r = Int(top.resource)
            guard top.version == heapVersion[r], weight[r] > 1e-12 else { continue }
            let level = top.level
            for f in flowsOn[r] where active[Int(f)] && flowStamp[Int(f)] == gen {
                flowStamp[Int(f)] = 0
                frozen += 1
                assigned[Int(f)] = level
                for j in resources(ofRoute: routeOf[Int(f)]) {
                    let q = Int(routeResources[j])
                    frozenLoad[q] += level * routeShares[j]
                    weight[q] -= routeShares[j]
                    heapVersion[q] &+= 1
                    if weight[q] > 1e-12 {
                        heap.push(level: max(level, (capacity[q] - frozenLoad[q]) / weight[q]), resource: Int32(q), version: heapVersion[q])
                    }
                }
            }
        }
        // Only the flows that drain first in each component get an event: every other flow's
        // rate changes when those finish (their component is recomputed then), so events for
        // them would go stale. Every flow of a recomputed component gets a new version, which
        // voids the events of its earlier recomputation.
        var start = 0
        for end in componentEnds {
            var first = Picoseconds.max
            for k in start..<end {
                let i = Int(componentFlows[k])
                let r = flowStamp[i] == 0 ? assigned[i] : 0
                flowStamp[i] = gen
                rate[i] = r
                version[i] &+= 1
                drainAt[i] = r > 0 ? (remaining[i] <= 0 ? now : now + Picoseconds((remaining[i] / r).rounded(.up))) : .max
                first = min(first, drainAt[i])
            }
            if first < .max {
                for k in start..<end where drainAt[Int(componentFlows[k])] == first {
                    let f = componentFlows[k]
                    drains(f, first, version[Int(f)])
                }
            }
            start = end
        }
    }
}

/// A min-heap of (level, resource) with versions for lazy invalidation.
private struct LevelHeap {
    struct Entry {
        var level: Double
        var resource: Int32
        var version: UInt32
    }

    private var items: [Entry] = []

    mutating func removeAll() { items.removeAll(keepingCapacity: true) }

    @inline(__always)
    private static func less(_ a: Entry, _ b: Entry) -> Bool {
        a.level != b.level ? a.level < b.level : a.resource < b.resource
    }

    mutating func push(level: Double, resource: Int32, version: UInt32) {
        let e = Entry(level: level, resource: resource, version: version)
        items.append(e)
        var c = items.count - 1
        while c > 0 {
            let p = (c - 1) / 2
            guard Self.less(e, items[p]) else { break }
            items[c] = items[p]
            c = p
        }
        items[c] = e
    }

    mutating func pop() -> Entry? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            var p = 0
            let n = items.count
            while true {
                var c = 2 * p + 1
                if c >= n { break }
                if c + 1 < n && Self.less(items[c + 1], items[c]) { c += 1 }
                guard Self.less(items[c], last) else { break }
                items[p] = items[c]
                p = c
            }
            items[p] = last
        }
        return top
    }
}
