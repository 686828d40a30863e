import ArgumentParser

/// `chorus`: plan, verify, run, benchmark and simulate collectives on described topologies.
@main
struct Chorus: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chorus",
        abstract: "Collective communication for training clusters: topologies, plans, benchmarks, projections.",
        discussion: """
            Exit codes: 0 success; 1 a bad input file, a failed proof, a failed or wrong collective; \
            64 bad flags.
            """,
        version: ChorusVersion.string,
        subcommands: [Topo.self, PlanCommand.self, VerifyCommand.self, BenchCommand.self, SimCommand.self, RunCommand.self, HelloCommand.self, TransportsCommand.self]
    )
}

enum ChorusVersion {
    static let string = "0.1.0"
}
