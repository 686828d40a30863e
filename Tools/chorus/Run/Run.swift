import ArgumentParser
import Chorus
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// `chorus run -n N -- CMD [ARGS...]`: launches N local ranks of a job, as `torchrun` or
/// `mpirun` would on one host.
///
/// Every rank gets the launcher variables Chorus reads (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`,
/// `LOCAL_WORLD_SIZE`, `CHORUS_RENDEZVOUS` on a free loopback port, and `CHORUS_JOB_TOKEN`, a
/// fresh random token unless one is set), plus the environment of `chorus run` itself. Ranks
/// share the terminal. When a rank fails (non-zero exit or a signal) the others are stopped
/// (SIGTERM to each rank's process group, then SIGKILL after a grace period) and `chorus run` exits with the failing rank's
/// status, naming it; Ctrl-C stops every rank.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Launch N local ranks of a job with the launcher environment set.",
        discussion: """
            Example: chorus run -n 4 -- ./train --steps 100
            Exit status: the first failing rank's (128 + signal when killed), else 0.
            """
    )

    @Option(name: .shortAndLong, parsing: .unconditional, help: "Number of ranks to launch (1-1024).")
    var n: Int

    @Option(help: "Rendezvous address host:port (default: a free port on 127.0.0.1).")
    var rendezvous: String?

    @Option(parsing: .unconditional, help: "Seconds a stopped job's other ranks get after SIGTERM before SIGKILL.")
    var grace: Double = 5

    @Argument(parsing: .captureForPassthrough, help: "The command each rank runs, after --.")
    var command: [String] = []

    mutating func validate() throws {
        if command.first == "--" { command.removeFirst() }
        guard (1...1024).contains(n) else { throw ValidationError("-n \(n): expected 1 to 1024 ranks") }
        guard !command.isEmpty else { throw ValidationError("no command given; usage: chorus run -n N -- CMD [ARGS...]") }
        guard grace >= 0, grace.isFinite else { throw ValidationError("--grace \(grace): expected a non-negative number of seconds") }
    }

    func run() throws {
        try Self.launch(command, ranks: n, environment: ChorusConfiguration.processEnvironment(), rendezvous: rendezvous, grace: grace)
    }

    /// Starts `ranks` copies of `argv` as one local job (the launcher variables set, a fresh
    /// store address and token unless given), supervises them, and exits with the first
    /// failure's status. Used by `chorus run` and `chorus bench --ranks`.
    static func launch(_ argv: [String], ranks: Int, environment: [String: String], rendezvous: String? = nil, grace: Double) throws {
        let address = try rendezvous ?? "127.0.0.1:\(freeLoopbackPort())"
        let token = environment["CHORUS_JOB_TOKEN"].flatMap { $0.isEmpty ? nil : $0 } ?? randomToken()
        var children: [pid_t] = []
        RunSignals.install()
        for rank in 0..<ranks {
            var env = environment
            env["RANK"] = String(rank)
            env["WORLD_SIZE"] = String(ranks)
            env["LOCAL_RANK"] = String(rank)
            env["LOCAL_WORLD_SIZE"] = String(ranks)
            env["CHORUS_RENDEZVOUS"] = address
            env["CHORUS_JOB_TOKEN"] = token
            do {
                children.append(try spawn(argv, environment: env))
            } catch {
                stop(children, grace: grace)
                throw RunFailure(message: "cannot start rank \(rank): \(error)", status: 1)
            }
        }
        let status = supervise(children, grace: grace)
        if status != 0 { throw ExitCode(status) }
    }

    /// Waits for every rank; on the first failure (or a signal to `chorus run`) stops the rest.
    static func supervise(_ children: [pid_t], grace: Double) -> Int32 {
        var running = Set(children)
        var firstFailure: Int32 = 0
        while !running.isEmpty {
            if let signal = RunSignals.received(), firstFailure == 0 {
                printError("chorus run: received signal \(signal); stopping \(running.count) rank(s)")
                firstFailure = 128 + signal
                stop(Array(running), grace: grace)
            }
            var status: Int32 = 0
            let pid = waitpid(-1, &status, WNOHANG)
            if pid <= 0 {
                if pid < 0 && errno == ECHILD { break }
                var pause = timespec(tv_sec: 0, tv_nsec: 10_000_000)
                nanosleep(&pause, nil)
                continue
            }
            guard running.remove(pid) != nil, let rank = children.firstIndex(of: pid) else { continue }
            let code = exitCode(status)
            if code != 0 && firstFailure == 0 {
                printError("chorus run: rank \(rank) (pid \(pid)) \(describe(status)); stopping the other \(running.count) rank(s)")
                firstFailure = code
                stop(Array(running), grace: grace)
            }
        }
        return firstFailure
    }

    /// SIGTERM to each rank's process group, then SIGKILL to the groups whose rank is still
    /// alive after `grace` seconds (reaped by the caller).
    static func stop(_ pids: [pid_t], grace: Double) {
        for pid in pids { kill(-pid, SIGTERM) }
        let deadline = ContinuousClock.now + .seconds(grace)
        var alive = pids
        while !alive.isEmpty && ContinuousClock.now < deadline {
            alive = alive.filter { pid in
                var status: Int32 = 0
                let r = waitpid(pid, &status, WNOHANG)
                return r == 0
            }
            var pause = timespec(tv_sec: 0, tv_nsec: 10_000_000)
            nanosleep(&pause, nil)
        }
        for pid in alive { kill(-pid, SIGKILL) }
    }

    static func exitCode(_ status: Int32) -> Int32 {
        if status & 0x7F == 0 { return (status >> 8) & 0xFF }   // exited
        return 128 + (status & 0x7F)                            // killed by a signal
    }

    static func describe(_ status: Int32) -> String {
        if status & 0x7F == 0 { return "exited with status \((status >> 8) & 0xFF)" }
        return "was killed by signal \(status & 0x7F)"
    }

    static func spawn(_ argv: [String], environment: [String: String]) throws -> pid_t {
        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            cArgs.forEach { free($0) }
            cEnv.forEach { free($0) }
        }
        // Each rank leads its own process group, so stopping it stops whatever it started too.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attributes, 0)
        var pid: pid_t = 0
        let r = posix_spawnp(&pid, argv[0], nil, &attributes, cArgs, cEnv)
        guard r == 0 else { throw RunFailure(message: "'\(argv[0])': \(String(cString: strerror(r)))", status: 1) }
        return pid
    }

    static func freeLoopbackPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw RunFailure(message: "chorus run: cannot create a socket to find a free port", status: 1) }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw RunFailure(message: "chorus run: cannot find a free loopback port", status: 1) }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// This executable's path (to start more copies of it).
    static func currentExecutable() -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        return n > 0 ? String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : CommandLine.arguments[0]
    }

    static func randomToken() -> String {
        (0..<4).map { _ in String(UInt64.random(in: 0...UInt64.max), radix: 16) }.joined()
    }
}

/// A failure of `chorus run` itself, with its exit status.
struct RunFailure: Error, CustomStringConvertible {
    var message: String
    var status: Int32
    var description: String { message }
}

/// SIGINT and SIGTERM to `chorus run`, noted for the supervising loop.
enum RunSignals {
    static let last = Atomic<Int32>(0)

    static func install() {
        for s in [SIGINT, SIGTERM, SIGHUP] {
            signal(s) { RunSignals.last.store($0, ordering: .relaxed) }
        }
    }

    static func received() -> Int32? {
        let s = last.exchange(0, ordering: .relaxed)
        return s == 0 ? nil : s
    }
}
