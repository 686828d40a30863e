import Chorus
import ChorusCore
import ChorusSchedule
#if canImport(Glibc)
import Glibc
#endif

/// Runs the sweep on one rank; rank 0 writes the output.
struct BenchRunner {
    let comm: Communicator
    let options: BenchCommand
    var rows: [BenchRow] = []

    init(comm: Communicator, options: BenchCommand) {
        self.comm = comm
        self.options = options
    }

    var isWriter: Bool { comm.rank == 0 }

    /// The sizes of the sweep: `-b` times `-f` until `-e`.
    var sizes: [Int] { Sweep.sizes(from: options.minBytes.bytes, to: options.maxBytes.bytes, factor: options.stepFactor) }

    /// Refuses a sweep whose buffers cannot fit this host's memory, before touching any: every
    /// local rank (`LOCAL_WORLD_SIZE`, which `chorus run` and torchrun set) holds a send and a
    /// receive buffer of the largest size, and filling more than the memory available makes the
    /// kernel kill a rank instead.
    static func checkMemory(perRank bytes: Int, largest: Int) throws(ChorusError) {
        guard let available = HostMemory.available() else { return }
        let local = ChorusEnvironment.value("LOCAL_WORLD_SIZE").flatMap { Int($0) }.map { max($0, 1) } ?? 1
        let (need, overflow) = bytes.multipliedReportingOverflow(by: local)
        guard overflow || need > available else { return }
        func gib(_ b: Int) -> String { "\((Double(b) / Double(1 << 30) * 10).rounded() / 10) GiB" }
        throw .invalidArgument("-e \(largest): \(local) rank(s) on this host need \(overflow ? "more than 8 EiB" : gib(need)) for their send and receive buffers, but \(gib(available)) of memory is available (MemAvailable in /proc/meminfo); use a smaller -e")
    }

    /// Runs everything; returns the number of wrong elements seen on any rank.
    mutating func sweep() throws(ChorusError) -> Int {
        let collectives = (try? options.collectives()) ?? [.allReduce]
        let types = (try? options.types()) ?? [.float32]
        let ops = (try? options.ops()) ?? [.sum]
        guard (0..<comm.size).contains(options.root) else {
            throw .invalidArgument("-r \(options.root): the root must be a rank of the \(comm.size)-rank job")
        }
        let n = comm.size
        let maxBytes = options.maxBytes.bytes
        // One pair of buffers for the whole sweep, big enough for every collective.
        let capacity = max(maxBytes, 64) + 64
        try Self.checkMemory(perRank: 2 * capacity, largest: maxBytes)
        let shared = options.sharedBuffers == 1
        let send: UnsafeMutableRawPointer, receive: UnsafeMutableRawPointer
        if shared {
            send = try SharedBuffer.allocate(byteCount: capacity).baseAddress!
            do {
                receive = try SharedBuffer.allocate(byteCount: capacity).baseAddress!
            } catch {
                SharedBuffer.free(send)
                throw error
            }
        } else {
            send = .allocate(byteCount: capacity, alignment: 4096)
            receive = .allocate(byteCount: capacity, alignment: 4096)
        }
        memset(send, 0, capacity)
        memset(receive, 0, capacity)
        defer {
            if shared {
                SharedBuffer.free(send)
                SharedBuffer.free(receive)
            } else {
                send.deallocate()
                receive.deallocate()
            }
        }
        var totalWrong = 0
        var busbwSum = 0.0, busbwCount = 0
        let steps = collectives.count * types.count * sizes.count
        var step = 0
        if isWriter && !options.json && !options.csv {
            print("# chorus bench: \(n) rank(s), transport \(comm.transportKind), \(options.iterations) iterations after \(options.warmup) warm-up, check \(options.check == 1 ? "on" : "off")\(shared ? ", shared buffers (-R 1)" : "")")
        }
        for collective in collectives {
            for type in types {
                let opList = collective.reduces ? ops : [ReduceOp.sum]
                if isWriter && !options.json && !options.csv { printHeader(collective) }
                for op in opList {
                    for size in sizes {
                        step += 1
                        if isWriter && opList.first == op { progress(step, of: steps, collective, size) }
                        // nccl-tests' counts: elements per rank's block.
                        let es = type.size
                        let perRankDivisor = (collective == .allGather || collective == .reduceScatter) ? n : 1
                        let count = size / es / perRankDivisor
                        let bytes = count * es * perRankDivisor
                        let algorithm = try comm.algorithm(for: collective, count: count, dataType: type, root: options.root)
                        var pair: [BenchRow] = []
                        for inPlace in [false, true] {
                            var row = try measure(collective, type, op, count: count, bytes: bytes, inPlace: inPlace,
                                                  send: send, receive: receive)
                            row.algorithm = algorithm
                            if let w = row.wrong { totalWrong += w }
                            pair.append(row)
                        }
                        rows += pair
                        if !pair[0].busbw.isNaN { busbwSum += pair[0].busbw; busbwCount += 1 }
                        if isWriter { emit(pair) }
                    }
                }
            }
        }
        clearProgress()
        // Every rank learns whether any rank saw a wrong value.
        let wrongEverywhere = try comm.allReduce([Int64(totalWrong)], op: .sum)[0]
        if isWriter && !options.json && !options.csv {
            print("# Out of bounds values : \(wrongEverywhere) \(wrongEverywhere == 0 ? "OK" : "WRONG")")
            print("# Avg bus bandwidth    : \(format(busbwCount > 0 ? busbwSum / Double(busbwCount) : 0, 3))")
            print("#")
        }
        if isWriter, let path = options.plot { try writePlot(to: path) }
        return Int(wrongEverywhere)
    }

    /// Times one placement, then (with `-c 1`) runs it once more on fresh inputs and checks.
    private func measure(_ collective: Collective, _ type: DataType, _ op: ReduceOp, count: Int, bytes: Int, inPlace: Bool,
                         send: UnsafeMutableRawPointer, receive: UnsafeMutableRawPointer) throws(ChorusError) -> BenchRow {
        let n = comm.size, es = type.size, root = options.root
        let (input, output) = placement(collective, count: count, es: es, inPlace: inPlace, send: send, receive: receive)
        func call() throws(ChorusError) {
            switch collective {
            case .allReduce: try comm.allReduce(input, output, count: count, dataType: type, op: op)
            case .allGather: try comm.allGather(input, output, count: count, dataType: type)
            case .reduceScatter: try comm.reduceScatter(input, output, count: count, dataType: type, op: op)
            case .broadcast: try comm.broadcast(input, output, count: count, dataType: type, root: root)
            case .reduce: try comm.reduce(input, output, count: count, dataType: type, op: op, root: root)
            }
        }
        fill(collective, type, op, count: count, input: input)
        for _ in 0..<options.warmup { try call() }
        try comm.barrier()
        let start = ContinuousClock.now
        for _ in 0..<options.iterations { try call() }
        let elapsed = ContinuousClock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        // nccl-tests' time: the mean over ranks of each rank's mean per call.
        let mean = try comm.allReduce([seconds / Double(options.iterations)], op: .sum)[0] / Double(n)
        let algbw = mean > 0 ? Double(bytes) / mean / 1e9 : 0
        var wrong: Int?
        if options.check == 1 {
            fill(collective, type, op, count: count, input: input)
            try call()
            wrong = verify(collective, type, op, count: count, output: output)
        }
        return BenchRow(collective: collective, algorithm: "", bytes: bytes, count: count, dataType: type, op: op, root: root,
                        inPlace: inPlace, timeMicroseconds: mean * 1e6, algbw: algbw,
                        busbw: algbw * collective.busBandwidthFactor(ranks: n), wrong: wrong)
    }

    /// Input and output pointers as NCCL's in-place forms place them.
    private func placement(_ c: Collective, count: Int, es: Int, inPlace: Bool, send: UnsafeMutableRawPointer,
                           receive: UnsafeMutableRawPointer) -> (UnsafeMutableRawPointer, UnsafeMutableRawPointer) {
        guard inPlace else { return (send, receive) }
        switch c {
        case .allGather: return (receive + comm.rank * count * es, receive)
        case .reduceScatter: return (send, send + comm.rank * count * es)
        default: return (send, send)
        }
    }

    private func inputElements(_ c: Collective, count: Int) -> Int { c == .reduceScatter ? count * comm.size : count }
    private func outputElements(_ c: Collective, count: Int) -> Int { c == .allGather ? count * comm.size : count }

    /// Writes this rank's deterministic input (chunk by chunk, so memory stays flat).
    private func fill(_ c: Collective, _ type: DataType, _ op: ReduceOp, count: Int, input: UnsafeMutableRawPointer) {
        let total = inputElements(c, count: count)
        var first = 0
        while first < total {
            let k = min(Self.chunk, total - first)
            let values = CollectiveCheck.input(rank: comm.rank, elements: k, dataType: type, first: first, op: op)
            values.withUnsafeBytes { (input + first * type.size).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            first += k
        }
    }

    static let chunk = 1 << 16

    /// Counts output elements that differ from the collective's definition, computed chunk by
    /// chunk from every rank's (regenerated) input.
    private func verify(_ c: Collective, _ type: DataType, _ op: ReduceOp, count: Int, output: UnsafeMutableRawPointer) -> Int {
        let n = comm.size, r = comm.rank, es = type.size, root = options.root
        if c == .reduce && r != root { return 0 }
        var wrong = 0
        func compare(_ expected: [UInt8], at element: Int) {
            let got = UnsafeRawBufferPointer(start: output + element * es, count: expected.count)
            for i in stride(from: 0, to: expected.count, by: es) where !got[i..<(i + es)].elementsEqual(expected[i..<(i + es)]) {
                wrong += 1
            }
        }
        func reduced(first: Int, k: Int) -> [UInt8] {
            let inputs = (0..<n).map { CollectiveCheck.input(rank: $0, elements: k, dataType: type, first: first, op: op) }
            return ReferenceInterpreter.expected(.allReduce, ranks: n, dataType: type, op: op, blockElements: k, inputs: inputs)[0]!
        }
        var first = 0
        switch c {
        case .allReduce, .reduce:
            while first < count {
                let k = min(Self.chunk, count - first)
                compare(reduced(first: first, k: k), at: first)
                first += k
            }
        case .reduceScatter:
            while first < count {
                let k = min(Self.chunk, count - first)
                compare(reduced(first: r * count + first, k: k), at: first)
                first += k
            }
        case .broadcast:
            while first < count {
                let k = min(Self.chunk, count - first)
                compare(CollectiveCheck.input(rank: root, elements: k, dataType: type, first: first, op: op), at: first)
                first += k
            }
        case .allGather:
            for block in 0..<n {
                first = 0
                while first < count {
                    let k = min(Self.chunk, count - first)
                    compare(CollectiveCheck.input(rank: block, elements: k, dataType: type, first: first, op: op), at: block * count + first)
                    first += k
                }
            }
        }
        return wrong
    }

    // MARK: Output

    private func printHeader(_ c: Collective) { print(ResultTable.header(c)) }

    private func emit(_ pair: [BenchRow]) {
        if options.json {
            for row in pair { print(ResultTable.json(row, transport: comm.transportKind, ranks: comm.size)) }
        } else if options.csv {
            if rows.count == 2 { print(ResultTable.csvHeader) }
            for row in pair { print(ResultTable.csv(row, transport: comm.transportKind, ranks: comm.size)) }
        } else {
            print(ResultTable.line(outOfPlace: pair[0], inPlace: pair[1]))
        }
    }

    /// A progress line on standard error when it is a terminal (rank 0).
    private func progress(_ step: Int, of total: Int, _ c: Collective, _ size: Int) {
        guard isatty(2) != 0, total > 1 else { return }
        printErrorNoNewline("\r# [\(step)/\(total)] \(c) \(ByteCount(size))        ")
    }

    private func clearProgress() {
        guard isWriter, isatty(2) != 0 else { return }
        printErrorNoNewline("\r\u{1B}[K")
    }

    /// busbw (out of place) against size, one line per collective, type and op.
    private func writePlot(to path: String) throws(ChorusError) {
        let series = Dictionary(grouping: rows.filter { !$0.inPlace && $0.bytes > 0 }) { "\($0.collective) \($0.dataType.ncclName) \($0.collective.reduces ? $0.op.rawValue : "")" }
        let svg = BenchPlot.svg(series: series.mapValues { $0.map { (Double($0.bytes), $0.busbw) } },
                                title: "chorus bench: \(comm.size) ranks, \(comm.transportKind)")
        guard let f = fopen(path, "w") else { throw .invalidArgument("--plot \(path): cannot write the file (\(String(cString: strerror(errno))))") }
        fputs(svg, f)
        fclose(f)
    }
}

func pad(_ s: String, _ width: Int) -> String { String(repeating: " ", count: max(0, width - s.count)) + s }

func format(_ v: Double, _ digits: Int) -> String {
    guard v.isFinite else { return "nan" }
    var p = 1.0
    for _ in 0..<digits { p *= 10 }
    let scaled = (abs(v) * p).rounded()
    let whole = Int(scaled / p), frac = Int(scaled.truncatingRemainder(dividingBy: p))
    let fracText = digits > 0 ? "." + pad(String(frac), digits).replacingSpaces() : ""
    return (v < 0 ? "-" : "") + String(whole) + fracText
}

extension String {
    func replacingSpaces() -> String { String(map { $0 == " " ? "0" : $0 }) }
}

func printErrorNoNewline(_ s: String) {
    let bytes = Array(s.utf8)
    bytes.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
}
