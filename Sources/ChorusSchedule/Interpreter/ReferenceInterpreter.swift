import ChorusCore

/// Runs a plan on real data in one process, untimed: the definition of what a plan computes.
/// The executor and the simulator are tested against it.
///
/// It follows the schedule semantics exactly (`ProgramGraph` dependencies, first-in first-out
/// rendezvous matching) and reduces with `ReferenceReduction`. It runs each op on whole chunks:
/// a plan's channel copies and slices split every chunk into disjoint pieces that each see the
/// same sequence of operations, so they cannot change a single bit of the result.
public enum ReferenceInterpreter {
    /// Runs `plan` and returns every rank's output buffer.
    /// - Parameters:
    ///   - blockElements: elements per block (the all-reduce count, the all-gather send count,
    ///     the reduce-scatter receive count).
    ///   - inputs: each rank's input bytes, `inputBlocks × blockElements × dataType.size` long.
    ///   - inPlace: run with input and output aliased as the collective's in-place form does.
    public static func run(_ plan: Plan, dataType: DataType, op reduceOp: ReduceOp, blockElements m: Int,
                           inputs: [[UInt8]], inPlace: Bool = false) throws -> [[UInt8]] {
        let schedule = plan.schedule
        let n = schedule.ranks
        let layout = schedule.layout
        let es = dataType.size
        precondition(inputs.count == n, "one input per rank")
        let inputBytes = layout.elementCount(.input, blockElements: m) * es
        for (r, input) in inputs.enumerated() {
            precondition(input.count == inputBytes, "rank \(r)'s input has \(input.count) bytes, expected \(inputBytes)")
        }
        let programs = schedule.allPrograms()
        let index = try schedule.index(programs: programs)
        let maps = (0..<n).map { StorageMap(layout: layout, collective: schedule.collective, rank: $0, aliased: inPlace) }
        let outputBytes = layout.elementCount(.output, blockElements: m) * es
        let scratchBytes = layout.elementCount(.scratch, blockElements: m) * es
        // Storage: output region, then input region, then scratch.
        func range(_ r: Int, _ buffer: BufferKind, _ c: Int) -> Range<Int> {
            var buffer = buffer
            var chunk = c
            if buffer == .input, inPlace, let alias = maps[r].outputAlias(ofInput: c) {
                buffer = .output
                chunk = alias
            }
            let elements = layout.elements(ofChunk: chunk, blockElements: m)
            let base: Int
            switch buffer {
            case .output: base = 0
            case .input: base = outputBytes
            case .scratch: base = outputBytes + inputBytes
            }
            return (base + elements.lowerBound * es)..<(base + elements.upperBound * es)
        }
        var storage = [[UInt8]](repeating: [UInt8](repeating: 0, count: outputBytes + inputBytes + scratchBytes), count: n)
        for r in 0..<n {
            for c in 0..<layout.chunkCount(.input) {
                let source = layout.elements(ofChunk: c, blockElements: m)
                let target = range(r, .input, c)
                storage[r].replaceSubrange(target, with: inputs[r][(source.lowerBound * es)..<(source.upperBound * es)])
            }
        }
        func gather(_ r: Int, _ slice: BufferSlice) -> [UInt8] {
            var bytes: [UInt8] = []
            slice.chunks.forEach { bytes.append(contentsOf: storage[r][range(r, slice.buffer, $0)]) }
            return bytes
        }
        /// Writes `data` into the slice's chunks; with `operand`, writes `operand ⊕ data`.
        func scatter(_ r: Int, _ slice: BufferSlice, _ data: [UInt8], reducingWith operand: BufferSlice?) {
            var offset = 0
            let operandChunks = operand?.chunks.chunks
            var j = 0
            slice.chunks.forEach { c in
                let target = range(r, slice.buffer, c)
                let length = target.count
                if let operand, let operandChunks {
                    let existing = Array(storage[r][range(r, operand.buffer, operandChunks[j])])
                    var out = [UInt8](repeating: 0, count: length)
                    existing.withUnsafeBytes { a in
                        data.withUnsafeBytes { b in
                            out.withUnsafeMutableBytes { d in
                                ReferenceReduction.combine(reduceOp, dataType, count: length / es, a: a.baseAddress!,
                                                           b: b.baseAddress! + offset, destination: d.baseAddress!)
                            }
                        }
                    }
                    storage[r].replaceSubrange(target, with: out)
                } else {
                    storage[r].replaceSubrange(target, with: data[offset..<(offset + length)])
                }
                offset += length
                j += 1
            }
        }

        let runner = RendezvousRunner(schedule: schedule, programs: programs, index: index)
        try runner.run(local: { id in
            let (r, i) = runner.position(of: id)
            let op = programs[r].ops[i]
            let data = gather(r, op.source!)
            scatter(r, op.destination!, data, reducingWith: op.kind == .reduce ? op.destination! : nil)
        }, transfer: { sendID, recvID in
            let (a, si) = runner.position(of: sendID), (b, ri) = runner.position(of: recvID)
            let data = gather(a, programs[a].ops[si].source!)
            let recv = programs[b].ops[ri]
            scatter(b, recv.destination!, data, reducingWith: recv.reducing ? (recv.source ?? recv.destination!) : nil)
        })

        var outputs = storage.map { Array($0[0..<outputBytes]) }
        if reduceOp == .avg && schedule.collective.reduces {
            for r in 0..<n where schedule.collective != .reduce || r == schedule.root {
                outputs[r].withUnsafeMutableBytes { ReferenceReduction.divide(dataType, count: outputBytes / es, buffer: $0.baseAddress!, by: n) }
            }
        }
        return outputs
    }

    /// What the collective itself defines, computed directly (no schedule): the oracle the
    /// interpreter, the executor and the simulator are all checked against.
    ///
    /// Contributions combine in rank order `((x0 ⊕ x1) ⊕ x2) …`; floating-point results of a
    /// schedule that reduces in another order may differ in the last bits, integers never.
    public static func expected(_ collective: Collective, ranks n: Int, root: Int = 0, dataType: DataType, op reduceOp: ReduceOp,
                                blockElements m: Int, inputs: [[UInt8]]) -> [[UInt8]?] {
        let es = dataType.size
        let blockBytes = m * es
        func reduceAll(_ extract: (Int) -> ArraySlice<UInt8>) -> [UInt8] {
            var acc = Array(extract(0))
            for r in 1..<max(n, 1) {
                let next = Array(extract(r))
                var out = acc
                acc.withUnsafeBytes { a in next.withUnsafeBytes { b in out.withUnsafeMutableBytes { d in
                    ReferenceReduction.combine(reduceOp, dataType, count: m, a: a.baseAddress!, b: b.baseAddress!, destination: d.baseAddress!)
                } } }
                acc = out
            }
            if reduceOp == .avg {
                acc.withUnsafeMutableBytes { ReferenceReduction.divide(dataType, count: m, buffer: $0.baseAddress!, by: n) }
            }
            return acc
        }
        guard m > 0 else {
            return (0..<n).map { r in collective == .reduce && r != root ? nil : [UInt8](repeating: 0, count: collective == .allGather ? 0 : 0) }
        }
        switch collective {
        case .allReduce:
            let result = reduceAll { inputs[$0][...] }
            return Array(repeating: result, count: n)
        case .reduce:
            let result = reduceAll { inputs[$0][...] }
            return (0..<n).map { $0 == root ? result : nil }
        case .broadcast:
            return Array(repeating: inputs[root], count: n)
        case .allGather:
            let result = inputs.flatMap { $0 }
            return Array(repeating: result, count: n)
        case .reduceScatter:
            return (0..<n).map { r in reduceAll { inputs[$0][(r * blockBytes)..<((r + 1) * blockBytes)] } }
        }
    }
}
