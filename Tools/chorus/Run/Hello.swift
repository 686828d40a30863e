import ArgumentParser
import Chorus

/// `chorus hello`: joins the job the environment describes, reports what this rank sees, and
/// meets the others at a barrier. The first thing to run under a new launcher or network: it
/// exercises the launcher variables, the rendezvous store, the job token and the transport
/// choice without any training code.
struct HelloCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hello",
        abstract: "Join the job from the launcher's environment, report this rank, and meet at a barrier.",
        discussion: """
            Example: chorus run -n 4 -- chorus hello --check
            With --check, every collective × data type × op is run in place and out of place on \
            several counts and checked against the reference; exit 1 if any result is wrong.
            """
    )

    @Flag(help: "Run and check every collective, data type and op (all ranks must pass it).")
    var check = false

    @Option(parsing: .unconditional, help: "With --check: run the checks this many times.")
    var iterations = 1

    func validate() throws {
        guard iterations >= 1 else { throw ValidationError("--iterations \(iterations): expected at least 1") }
    }

    func run() throws {
        let comm: Communicator
        do {
            comm = try Communicator.fromEnvironment()
        } catch {
            printError("chorus hello: \(error)")
            throw ExitCode(1)
        }
        do {
            let sizes = try comm.allGather([Int32(comm.rank)])
            try comm.barrier()
            // Which transport each peer uses, grouped: "shm: 1; tcp: 2, 3".
            var byKind: [String: [Int]] = [:]
            for peer in 0..<comm.size where peer != comm.rank { byKind[comm.transportKind(to: peer), default: []].append(peer) }
            let pairs = byKind.keys.sorted().map { "\($0): \(byKind[$0]!.map(String.init).joined(separator: ", "))" }.joined(separator: "; ")
            print("rank \(comm.rank) of \(comm.size): transport \(comm.transportKind)\(pairs.isEmpty ? "" : " (\(pairs))"); all \(sizes.count) ranks answered")
            if check {
                // Counts: empty, one element, a prime, and one not divisible by the rank count.
                let cases = CollectiveCheck.grid(ranks: comm.size, counts: [0, 1, 13, 3 * comm.size + 1])
                var wrong: [String] = []
                for _ in 0..<iterations {
                    for c in cases {
                        if let problem = try c.run(on: comm) { wrong.append(problem) }
                    }
                }
                try comm.barrier()
                for line in wrong.prefix(10) { printError("chorus hello: \(line)") }
                print("rank \(comm.rank): \(cases.count * iterations) calls checked, \(wrong.count) wrong")
                if !wrong.isEmpty { throw ExitCode(1) }
            }
        } catch let error as ChorusError {
            printError("chorus hello: rank \(comm.rank): \(error)")
            throw ExitCode(1)
        }
    }
}
