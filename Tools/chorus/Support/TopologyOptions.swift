import ArgumentParser
import ChorusCore
import ChorusTopology

/// Parameter overrides for topology files that declare `parameters:` (e.g. `--param ranks=8`).
struct TopologyParameterOptions: ParsableArguments {
    @Option(name: .customLong("param"), help: ArgumentHelp(
        "Set a parameter the topology declares, as NAME=INTEGER (repeatable).", valueName: "name=value"))
    var parameters: [String] = []

    func parsed() throws -> [String: Int] {
        var result: [String: Int] = [:]
        for text in parameters {
            let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty, let value = Int(parts[1]) else {
                throw ValidationError("--param expects NAME=INTEGER, e.g. --param ranks=8; got '\(text)'")
            }
            result[parts[0]] = value
        }
        return result
    }
}

/// Loads a topology for a command, printing every problem in `file:line:column` form and
/// exiting 1 on failure.
func loadTopologyOrExit(_ pathOrName: String, parameters: [String: Int] = [:]) throws -> Topology {
    do {
        return try TopologyLoader().load(pathOrName, parameters: parameters)
    } catch let error as TopologyError {
        printError(error.description)
        throw ExitCode(1)
    }
}
