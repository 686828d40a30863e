import ArgumentParser
import Chorus

/// `chorus transports`: which transports can run on this host and what they would use, or why
/// not; what `auto` can choose from before any job runs.
struct TransportsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "transports",
        abstract: "Show which transports can run on this host, and why not.",
        discussion: """
            Reads CHORUS_OFI_PROVIDER, CHORUS_IB_HCA and CHORUS_IB_GID_INDEX like a job would. \
            Between hosts, auto takes RDMA (libfabric's efa, then verbs) when every rank has it, else TCP.
            """
    )

    @Flag(help: "One JSON object per transport (keys name, available, detail).")
    var json = false

    func run() throws {
        let configuration: ChorusConfiguration
        do {
            configuration = try ChorusConfiguration(environment: ChorusConfiguration.processEnvironment())
        } catch {
            printError("chorus transports: \(error)")
            throw ExitCode(64)
        }
        for t in TransportAvailability.probe(configuration: configuration) {
            if json {
                print(JSONValue.object([("name", .string(t.name)), ("available", .bool(t.available)), ("detail", .string(t.detail))]).rendered)
            } else {
                print(t.name + String(repeating: " ", count: max(1, 7 - t.name.count)) + (t.available ? "yes  " : "no   ") + t.detail)
            }
        }
    }
}
