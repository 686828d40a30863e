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
        discussion: "Example: chorus run -n 4 -- chorus hello"
    )

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
            print("rank \(comm.rank) of \(comm.size): transport \(comm.transportKind); all \(sizes.count) ranks answered")
        } catch {
            printError("chorus hello: rank \(comm.rank): \(error)")
            throw ExitCode(1)
        }
    }
}
