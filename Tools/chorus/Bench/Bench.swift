import ArgumentParser
import Chorus
import ChorusCore
import ChorusSchedule
#if canImport(Glibc)
import Glibc
#endif

/// `chorus bench`: collective micro-benchmarks in the shape of nccl-tests.
///
/// Started once per rank by a launcher (torchrun-style variables, `mpirun`, `srun`,
/// `chorus run`) it joins the job from the environment; with `--ranks N` it launches N local
/// ranks of itself. Rank 0 prints the table (or `--json` lines, `--csv`), and `--plot` draws
/// bus bandwidth against size.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure collectives the way nccl-tests does (time, algbw, busbw, #wrong).",
        discussion: """
            Sizes are nccl-tests': the whole buffer (all-gather: the gathered output; reduce-scatter: \
            the scattered input); K, M, G are binary. busbw = algbw x 2(n-1)/n for all-reduce, \
            x (n-1)/n for all-gather and reduce-scatter, x 1 for broadcast and reduce.
            Examples:
              chorus bench --ranks 2 -b 8 -e 256M -f 4
              chorus bench --ranks 4 --collective all --check -b 1K -e 1M
              chorus run -n 2 -- chorus bench --json -b 64M -e 64M
              chorus bench --ranks 2 -R 1 -b 64M -e 256M -f 4   (buffers peers read in place)
            Exit status: 0, or 1 if any result was wrong or a collective failed.
            """
    )

    @Option(name: .customShort("b"), parsing: .unconditional, help: "Smallest size (bytes; K/M/G binary).")
    var minBytes: SizeArgument = SizeArgument(argument: "32M")!
    @Option(name: .customShort("e"), parsing: .unconditional, help: "Largest size.")
    var maxBytes: SizeArgument = SizeArgument(argument: "32M")!
    @Option(name: .customShort("f"), parsing: .unconditional, help: "Multiply the size by this between steps.")
    var stepFactor: Int = 2
    @Option(name: .customShort("n"), parsing: .unconditional, help: "Timed iterations per size.")
    var iterations: Int = 20
    @Option(name: .customShort("w"), parsing: .unconditional, help: "Warm-up iterations per size.")
    var warmup: Int = 5
    @Option(name: .customShort("c"), parsing: .unconditional, help: "Check results (1) or not (0).")
    var check: Int = 1
    @Flag(name: .customLong("check"), help: "Check results (the same as -c 1).")
    var checkFlag = false
    @Option(name: .customShort("d"), help: "Data type: float, double, half, bfloat16, int8, uint8, int32, uint32, int64, uint64, or all.")
    var dataType: String = "float"
    @Option(name: .customShort("o"), help: "Reduction: sum, prod, min, max, avg, or all.")
    var op: String = "sum"
    @Option(name: .customShort("r"), parsing: .unconditional, help: "Root of broadcast and reduce.")
    var root: Int = 0
    @Option(help: "Collectives: all-reduce, all-gather, reduce-scatter, broadcast, reduce (comma-separated), or all.")
    var collective: String = "all-reduce"
    @Option(parsing: .unconditional, help: "Launch this many local ranks (omit under a launcher).")
    var ranks: Int?
    @Option(help: "Transport: auto, shm, tcp, verbs, ofi, inproc (sets CHORUS_TRANSPORT).")
    var transport: String?
    @Option(help: "Algorithm override (sets CHORUS_ALGO; the grammar of chorus plan --algo).")
    var algo: String?
    @Flag(help: "JSON Lines on standard output, one object per row and placement (rank 0 only).")
    var json = false
    @Flag(help: "CSV on standard output (rank 0 only).")
    var csv = false
    @Option(help: "Write an SVG plot of busbw against size to this file.")
    var plot: String?
    @Option(name: .customShort("R"), parsing: .unconditional, help: "Buffers: 0 ordinary memory; 1 shared buffers (SharedBuffer: over shared memory, large messages move with one copy instead of two).")
    var sharedBuffers: Int = 0

    /// The largest `-e` accepted (far above any host's memory; the memory check refuses what
    /// does not fit, and sizes stay clear of integer overflow).
    static let largestSize = 1 << 50

    mutating func validate() throws {
        guard minBytes.bytes >= 0, maxBytes.bytes >= minBytes.bytes else {
            throw ValidationError("-b \(minBytes.bytes) -e \(maxBytes.bytes): the largest size must be at least the smallest")
        }
        guard maxBytes.bytes <= Self.largestSize else {
            throw ValidationError("-e \(maxBytes.bytes): the largest size is at most \(Self.largestSize) bytes (1 PiB)")
        }
        guard stepFactor >= 2 else { throw ValidationError("-f \(stepFactor): the step factor must be at least 2") }
        guard iterations >= 1 else { throw ValidationError("-n \(iterations): at least one timed iteration") }
        guard warmup >= 0 else { throw ValidationError("-w \(warmup): warm-up iterations cannot be negative") }
        guard check == 0 || check == 1 else { throw ValidationError("-c \(check): expected 0 or 1") }
        guard sharedBuffers == 0 || sharedBuffers == 1 else { throw ValidationError("-R \(sharedBuffers): expected 0 (ordinary memory) or 1 (shared buffers)") }
        if checkFlag { check = 1 }
        guard !(json && csv) else { throw ValidationError("--json and --csv: choose one") }
        if let ranks { guard (1...1024).contains(ranks) else { throw ValidationError("--ranks \(ranks): expected 1 to 1024") } }
        _ = try collectives()
        _ = try types()
        _ = try ops()
        if let plot { try Self.checkWritable(plot) }
        if let transport {
            guard ["auto", "shm", "tcp", "verbs", "ofi", "inproc"].contains(transport) else {
                throw ValidationError("--transport \(transport): expected auto, shm, tcp, verbs, ofi or inproc")
            }
        }
    }

    /// Fails unless `path` can be written, before any rank starts: the plot is drawn after the
    /// sweep, and a sweep can take minutes.
    static func checkWritable(_ path: String) throws {
        var st = stat()
        if stat(path, &st) == 0 {
            guard (st.st_mode & S_IFMT) != S_IFDIR else { throw ValidationError("--plot \(path): is a directory") }
            guard access(path, W_OK) == 0 else { throw ValidationError("--plot \(path): cannot write the file (\(String(cString: strerror(errno))))") }
            return
        }
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        guard access(directory, W_OK) == 0 else {
            throw ValidationError("--plot \(path): cannot create the file in \(directory) (\(String(cString: strerror(errno))))")
        }
    }

    func collectives() throws -> [Collective] { try Sweep.collectives(collective) }

    func types() throws -> [DataType] {
        if dataType == "all" { return DataType.allCases }
        return try dataType.split(separator: ",").map { name in
            guard let t = DataType(name: String(name)) else { throw ValidationError("-d \(name): not a data type") }
            return t
        }
    }

    func ops() throws -> [ReduceOp] {
        if op == "all" { return ReduceOp.allCases }
        return try op.split(separator: ",").map { name in
            guard let o = ReduceOp(name: String(name)) else { throw ValidationError("-o \(name): expected sum, prod, min, max, avg or all") }
            return o
        }
    }

    func run() throws {
        var environment = ChorusConfiguration.processEnvironment()
        if let transport { environment["CHORUS_TRANSPORT"] = transport }
        if let algo { environment["CHORUS_ALGO"] = algo }
        let underLauncher = (try? LaunchEnvironment(environment: environment)) != nil
        if let ranks, !underLauncher {
            try launch(ranks: ranks, environment: environment)
            return
        }
        if !underLauncher {
            // One rank of its own: nothing to meet.
            environment["RANK"] = "0"
            environment["WORLD_SIZE"] = "1"
            environment["CHORUS_RENDEZVOUS"] = "127.0.0.1:0"
            environment["CHORUS_JOB_TOKEN"] = environment["CHORUS_JOB_TOKEN"] ?? RunCommand.randomToken()
        }
        let comm: Communicator
        do {
            comm = try Communicator.fromEnvironment(environment)
        } catch {
            printError("chorus bench: \(error)")
            throw ExitCode(1)
        }
        var runner = BenchRunner(comm: comm, options: self)
        let wrong: Int
        do {
            wrong = try runner.sweep()
        } catch {
            printError("chorus bench: rank \(comm.rank): \(error)")
            throw ExitCode(1)
        }
        if wrong > 0 { throw ExitCode(1) }
    }

    /// Starts `ranks` copies of this command (without `--ranks`) as a local job.
    private func launch(ranks: Int, environment: [String: String]) throws {
        var arguments = Array(CommandLine.arguments.dropFirst())
        if let i = arguments.firstIndex(where: { $0 == "--ranks" }) {
            arguments.removeSubrange(i...min(i + 1, arguments.count - 1))
        } else if let i = arguments.firstIndex(where: { $0.hasPrefix("--ranks=") }) {
            arguments.remove(at: i)
        }
        try RunCommand.launch([RunCommand.currentExecutable()] + arguments, ranks: ranks, environment: environment, grace: 5)
    }
}
