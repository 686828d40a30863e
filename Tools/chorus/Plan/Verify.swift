import ArgumentParser
import ChorusAlgorithms
import ChorusCore
import ChorusSchedule
import ChorusTopology

/// `chorus verify`: prove a schedule computes its collective and cannot deadlock.
struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Prove that a schedule computes its collective, in place and out of place, and cannot deadlock.",
        discussion: """
            Give a schedule JSON file, or a registered algorithm with --algo, --collective and --ranks. \
            Exits 0 when the proof holds, 1 with the failure (which rank, op and chunk).
            """)

    @Argument(help: "A schedule JSON file.")
    var file: String?

    @Option(help: "Verify a registered algorithm instead of a file.")
    var algo: String?

    @Option(help: "The collective, with --algo.")
    var collective: Collective = .allReduce

    @Option(parsing: .unconditional, help: "Ranks, with --algo.")
    var ranks: Int = 8

    @Option(parsing: .unconditional, help: "Root of broadcast and reduce, with --algo.")
    var root: Int = 0

    @Option(help: "A topology giving torus and instance structure, with --algo.")
    var topology: String?

    func validate() throws {
        if file == nil && algo == nil { throw ValidationError("give a schedule file, or --algo with --collective and --ranks") }
        if file != nil && algo != nil { throw ValidationError("give either a schedule file or --algo, not both") }
        if ranks < 1 { throw ValidationError("--ranks must be at least 1") }
        if let algo, AlgorithmRegistry.algorithm(id: algo) == nil {
            throw ValidationError("unknown algorithm '\(algo)'; known: \(AlgorithmRegistry.ids.joined(separator: ", "))")
        }
    }

    func run() throws {
        let schedule: Schedule
        let name: String
        do {
            if let file {
                schedule = try Schedule.load(file: file)
                name = file
            } else {
                let algorithm = AlgorithmRegistry.algorithm(id: algo!)!
                var context = AlgorithmContext(ranks: ranks)
                if let topology {
                    let t = try loadTopologyOrExit(topology)
                    guard ranks <= t.rankCount else { throw ValidationError("--ranks \(ranks) is more than the \(t.rankCount) ranks of \(t.name)") }
                    context = AlgorithmContext(topology: t, ranks: ranks)
                }
                schedule = try algorithm.generate(CollectiveSpec(collective, ranks: ranks, root: root), context: context)
                name = "\(algorithm.id) \(collective) on \(ranks) ranks"
            }
            try SymbolicChecker.checkFitsInMemory(schedule)
            let programs = schedule.allPrograms()
            try SymbolicChecker.verify(schedule, programs: programs)
            let ops = programs.reduce(0) { $0 + $1.count }
            print("\(name): proven: \(schedule.collective) on \(schedule.ranks) rank\(schedule.ranks == 1 ? "" : "s"), \(ops) ops, \(schedule.channels) channel\(schedule.channels == 1 ? "" : "s"); correct out of place and in place, and cannot deadlock")
        } catch let error as ScheduleError {
            printError("\(file.map { "\($0): " } ?? "")\(error)")
            throw ExitCode(1)
        }
    }
}
