import ChorusCore
import ChorusSchedule

extension SimulationRun {
    /// Spot-checks a declared symmetry before trusting it: for sampled representatives `q` and
    /// translations `t`, rank `t(q)`'s program must be rank `q`'s with every peer translated by
    /// `t`, op for op (kind, channel, reducing, buffers and chunk counts, explicit dependencies),
    /// and the dependencies the engine derives from chunk conflicts must be the same.
    static func spotCheck(_ schedule: Schedule, _ symmetry: RankSymmetry) throws {
        let orbits = symmetry.orbits
        let representatives = Set(orbits <= 4 ? Array(0..<orbits) : [0, 1, orbits / 2, orbits - 1]).sorted()
        let elements = SymmetricNetwork.sampledElements(symmetry).prefix(6)
        func fail(_ what: String) -> SimulationError {
            .asymmetric("\(schedule.algorithm) declares \(symmetry), but \(what); simulate every rank instead (chorus sim --no-symmetry), or fix the declaration")
        }
        func graph(_ program: RankProgram, _ rank: Int) -> ProgramGraph {
            ProgramGraph(program: program, storage: StorageMap(layout: schedule.layout, collective: schedule.collective, rank: rank, aliased: true))
        }
        for q in representatives {
            let base = schedule.program(for: q)
            var baseGraph: ProgramGraph?
            for (n, k) in elements.enumerated() {
                let t = symmetry.element(k)
                let r = symmetry.apply(t, to: q)
                let image = schedule.program(for: r)
                guard image.count == base.count else {
                    throw fail("rank \(r) has \(image.count) ops where rank \(q) has \(base.count)")
                }
                for (i, (a, b)) in zip(base.ops, image.ops).enumerated() {
                    let message = a.kind == .send || a.kind == .recv
                    var differs: String?
                    if a.kind != b.kind || a.channel != b.channel || a.reducing != b.reducing {
                        differs = "kind, channel or reduction"
                    } else if message && Int(b.peer) != symmetry.apply(t, to: Int(a.peer)) {
                        differs = "peer \(b.peer), not \(symmetry.apply(t, to: Int(a.peer)))"
                    } else if a.source?.buffer != b.source?.buffer || a.source?.chunks.count != b.source?.chunks.count
                                || a.destination?.buffer != b.destination?.buffer || a.destination?.chunks.count != b.destination?.chunks.count {
                        differs = "buffers or chunk counts"
                    } else if a.after != b.after {
                        differs = "explicit dependencies"
                    }
                    if let differs {
                        throw fail("rank \(r) op \(i) (\(b.summary)) differs from rank \(q) op \(i) (\(a.summary)) in its \(differs)")
                    }
                }
                guard n < 2 else { continue }
                let g = baseGraph ?? graph(base, q)
                baseGraph = g
                let h = graph(image, r)
                guard h.successorOffsets == g.successorOffsets, h.successorList == g.successorList else {
                    throw fail("rank \(r)'s ops depend on each other differently from rank \(q)'s")
                }
            }
        }
    }
}
