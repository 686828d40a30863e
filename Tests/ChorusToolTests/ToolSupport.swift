import Foundation
import Testing

/// The repository root, found from this file's path.
let repositoryRoot: String = {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
}()

/// The `chorus` executable built next to the test bundle.
let chorusExecutable: String = {
    let bundleDirectory = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
    return bundleDirectory.appendingPathComponent("chorus").path
}()

struct ToolResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs `chorus` with arguments from the repository root and collects its output.
func runChorus(_ arguments: [String], environment: [String: String] = [:]) throws -> ToolResult {
    try runProcess(chorusExecutable, arguments, environment: environment)
}

/// `chorus hello --check` on `ranks` local ranks under `environment`: every rank exits 0 having
/// run every collective × data type × op without a wrong result, and every rank reports
/// `transport`.
func expectEveryCollectiveCorrect(ranks: Int, environment: [String: String], transport: String,
                                  sourceLocation: SourceLocation = #_sourceLocation) throws {
    let r = try runChorus(["run", "-n", String(ranks), "--", chorusExecutable, "hello", "--check"], environment: environment)
    #expect(r.status == 0, "\(r.stderr)", sourceLocation: sourceLocation)
    let summaries = r.stdout.split(separator: "\n").filter { $0.contains("calls checked") }
    #expect(summaries.count == ranks, sourceLocation: sourceLocation)
    #expect(summaries.allSatisfy { $0.hasSuffix(" 0 wrong") }, "\(summaries)", sourceLocation: sourceLocation)
    #expect(r.stdout.components(separatedBy: "transport \(transport)").count == ranks + 1, "\(r.stdout)", sourceLocation: sourceLocation)
}

/// `chorus bench --check` over every collective on 3 local ranks with four channel copies of a
/// ring (`-b 4 -e largest -f factor`) over `transport`, and expects every value in bounds.
/// Returns the run for further checks.
@discardableResult
func expectCheckedChannelSweep(transport: String, largest: String, factor: Int, environment: [String: String],
                               sourceLocation: SourceLocation = #_sourceLocation) throws -> ToolResult {
    let r = try runChorus(["bench", "--ranks", "3", "--transport", transport, "--collective", "all", "-b", "4", "-e", largest,
                           "-f", String(factor), "-n", "2", "-w", "1", "--check", "--algo", "ring{channels=4}"], environment: environment)
    #expect(r.status == 0, "\(r.stderr)", sourceLocation: sourceLocation)
    #expect(r.stdout.contains("# Out of bounds values : 0 OK"), "\(r.stdout)", sourceLocation: sourceLocation)
    return r
}

/// Runs a program from the repository root with extra environment and collects its output.
func runProcess(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws -> ToolResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.currentDirectoryURL = URL(fileURLWithPath: repositoryRoot)
    var env = ProcessInfo.processInfo.environment
    for (k, v) in environment { env[k] = v }
    process.environment = env
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    // Read both pipes before waiting, so a large output cannot fill a pipe and stall the child.
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return ToolResult(status: process.terminationStatus,
                      stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData, as: UTF8.self))
}

/// Starts a 3-rank `chorus hello --check` job as separate processes (no launcher, so nothing
/// stops the survivors), kills rank 1 once the job runs, and returns the survivors' exit
/// statuses and standard error, with the killed rank's pid.
func killRankOneMidCollective(environment extra: [String: String]) throws -> (pid: Int32, survivors: [(status: Int32, stderr: String)]) {
    let port = freeLoopbackPort()
    var ranks: [(Process, Pipe)] = []
    for rank in 0..<3 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: chorusExecutable)
        p.arguments = ["hello", "--check", "--iterations", "100000"]
        var env = ProcessInfo.processInfo.environment
        env["RANK"] = String(rank)
        env["WORLD_SIZE"] = "3"
        env["CHORUS_RENDEZVOUS"] = "127.0.0.1:\(port)"
        env["CHORUS_JOB_TOKEN"] = "kill-test-\(port)"
        env["CHORUS_TIMEOUT"] = "120"
        for (k, v) in extra { env[k] = v }
        p.environment = env
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        ranks.append((p, err))
    }
    // Let the job form and run for a while, then kill rank 1 mid-collective.
    Thread.sleep(forTimeInterval: 1.5)
    // Only while it runs: once Foundation has reaped it, its pid may belong to another process.
    if ranks[1].0.isRunning {
        kill(ranks[1].0.processIdentifier, SIGKILL)
    } else {
        Issue.record("rank 1 exited before it could be killed (status \(ranks[1].0.terminationStatus))")
    }
    var survivors: [(Int32, String)] = []
    for r in [0, 2] {
        let text = String(decoding: ranks[r].1.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        ranks[r].0.waitUntilExit()
        survivors.append((ranks[r].0.terminationStatus, text))
    }
    ranks[1].0.waitUntilExit()
    return (ranks[1].0.processIdentifier, survivors)
}

/// Whether this build has the OFI transport (the package's RDMA trait, on by default).
let chorusHasOFI: Bool = {
    #if RDMA
    true
    #else
    false
    #endif
}()

/// Whether this host has an RDMA port (InfiniBand or RoCE) the verbs suite can run on, as
/// `chorus transports` finds it (an EFA device alone does not count: it goes through OFI).
let verbsDevicePresent: Bool = {
    let devices = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/class/infiniband")) ?? []
    guard chorusHasOFI, !devices.isEmpty, let r = try? runChorus(["transports", "--json"]) else { return false }
    return r.stdout.split(separator: "\n").contains { $0.contains("\"name\":\"verbs\"") && $0.contains("\"available\":true") }
}()

/// A loopback port for a test's rendezvous store: below the kernel's ephemeral range (so no
/// other test's outgoing connection takes it meanwhile) and free right now.
func freeLoopbackPort() -> Int {
    for _ in 0..<100 {
        let port = Int.random(in: 20000..<32768)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { continue }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if bound == 0 { return port }
    }
    return Int.random(in: 20000..<32768)
}
