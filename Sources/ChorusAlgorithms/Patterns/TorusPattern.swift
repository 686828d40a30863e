/// Ranks laid out on an N-dimensional torus, row-major (the last dimension varies fastest),
/// matching `TorusEmbedding` in topology files.
public struct TorusPattern: Hashable, Sendable {
    public let dimensions: [Int]
    public let wraps: [Bool]

    public init(dimensions: [Int], wraps: [Bool]? = nil) {
        precondition(!dimensions.isEmpty && dimensions.allSatisfy { $0 >= 1 })
        self.dimensions = dimensions
        self.wraps = wraps ?? Array(repeating: true, count: dimensions.count)
    }

    public var count: Int { dimensions.reduce(1, *) }

    public func coordinates(of rank: Int) -> [Int] {
        var rest = rank
        var c = [Int](repeating: 0, count: dimensions.count)
        for d in dimensions.indices.reversed() {
            c[d] = rest % dimensions[d]
            rest /= dimensions[d]
        }
        return c
    }

    public func rank(at coordinates: [Int]) -> Int {
        var r = 0
        for d in dimensions.indices { r = r * dimensions[d] + coordinates[d] }
        return r
    }

    /// The ranks on the line through `rank` along dimension `d`, in coordinate order.
    public func line(through rank: Int, dimension d: Int) -> [Int] {
        var c = coordinates(of: rank)
        return (0..<dimensions[d]).map { c[d] = $0; return self.rank(at: c) }
    }

    /// Neighbours of `rank` (one step along any dimension, wrapping where the torus wraps).
    public func neighbours(of rank: Int) -> [Int] {
        let c = coordinates(of: rank)
        var result: [Int] = []
        for d in dimensions.indices where dimensions[d] > 1 {
            for step in [1, -1] {
                let next = c[d] + step
                guard wraps[d] || (0..<dimensions[d]).contains(next) else { continue }
                var n = c
                n[d] = (next + dimensions[d]) % dimensions[d]
                let r = self.rank(at: n)
                if r != rank && !result.contains(r) { result.append(r) }
            }
        }
        return result
    }

    // MARK: - Hypercube view

    /// Whether the torus is a hypercube under Gray-code labelling: every dimension has 1, 2 or 4
    /// positions, and 4-position dimensions wrap (C₄ ≅ Q₂; the 4x4 torus is the 4-D hypercube).
    public var isHypercube: Bool {
        dimensions.indices.allSatisfy { dimensions[$0] <= 2 || (dimensions[$0] == 4 && wraps[$0]) }
    }

    /// The hypercube label of `rank`: each coordinate as a Gray code (`x ^ (x >> 1)`), dimensions
    /// concatenated. Labels that differ in one bit are torus neighbours.
    public func hypercubeLabel(of rank: Int) -> Int {
        let c = coordinates(of: rank)
        var label = 0
        for d in dimensions.indices {
            let bits = dimensions[d] == 4 ? 2 : (dimensions[d] == 2 ? 1 : 0)
            label = (label << bits) | (c[d] ^ (c[d] >> 1))
        }
        return label
    }

    // MARK: - Hamiltonian cycles

    /// Two link-disjoint Hamiltonian cycles (each a ring through every rank over torus links
    /// only), found by a bounded depth-first search; `nil` if none is found within the budget.
    ///
    /// On a 2-D torus the two cycles use every link (the 4x4 Trainium torus splits into two such
    /// rings); on 3-D tori they use a third of the links each. Searches are deterministic.
    public func disjointHamiltonianCycles(budget: Int = 2_000_000) -> ([Int], [Int])? {
        let n = count
        guard n >= 3 else { return nil }
        let adjacency = (0..<n).map { neighbours(of: $0).sorted() }
        guard adjacency.allSatisfy({ $0.count >= 4 }) else { return nil }
        var steps = 0
        var used = Set<Edge>()
        func search(_ forbidden: Set<Edge>, then: ([Int]) -> [Int]?) -> ([Int], [Int])? {
            var path = [0]
            var visited = [Bool](repeating: false, count: n)
            visited[0] = true
            var found: ([Int], [Int])?
            func extend() -> Bool {
                steps += 1
                if steps > budget { return true }
                let last = path.last!
                if path.count == n {
                    guard adjacency[last].contains(0), !forbidden.contains(Edge(last, 0)) else { return false }
                    if let second = then(path) { found = (path, second); return true }
                    return false
                }
                // Warnsdorff's order: neighbours with the fewest free continuations first.
                let candidates = adjacency[last].filter { !visited[$0] && !forbidden.contains(Edge(last, $0)) }
                    .sorted { a, b in
                        let fa = adjacency[a].filter { !visited[$0] }.count, fb = adjacency[b].filter { !visited[$0] }.count
                        return fa != fb ? fa < fb : a < b
                    }
                for next in candidates {
                    visited[next] = true
                    path.append(next)
                    if extend() { return true }
                    path.removeLast()
                    visited[next] = false
                }
                return false
            }
            _ = extend()
            return found
        }
        let result = search(used) { first in
            used = Set(first.indices.map { Edge(first[$0], first[($0 + 1) % n]) })
            return search(used, then: { $0 })?.0
        }
        return result
    }

    struct Edge: Hashable {
        let a: Int, b: Int
        init(_ x: Int, _ y: Int) { a = min(x, y); b = max(x, y) }
    }
}
