import Foundation
import Testing

/// The C API and the Python binding, end to end: the header under C11 and C++17 with warnings
/// as errors, the C example and the bad-argument checks across processes started by
/// `chorus run`, the Python binding's checks and training loop, and an installed copy loading
/// on a host view without the Swift toolchain.
@Suite("C API and Python binding", .serialized)
struct CAPITests {
    /// Where `swift build` put libChorusC.so (next to the test bundle and the chorus tool).
    let libraryDirectory = URL(fileURLWithPath: chorusExecutable).deletingLastPathComponent().path
    /// A fresh directory per test, removed when the test's instance goes.
    let scratchDirectory = ScratchDirectory()
    var scratch: String { scratchDirectory.path }

    /// Runs a shell command from the repository root; returns status and both outputs.
    func shell(_ command: String, environment: [String: String] = [:]) throws -> ToolResult {
        try runProcess("/bin/sh", ["-c", command], environment: environment)
    }

    /// Compiles a C or C++ file against include/chorus.h and the built library.
    func compile(_ source: String, output: String, cxx: Bool = false) throws -> ToolResult {
        let compiler = cxx ? "c++ -std=c++17" : "cc -std=c11"
        return try shell("\(compiler) -Wall -Wextra -Werror -pedantic -Iinclude \(source) -L'\(libraryDirectory)' -lChorusC -Wl,-rpath,'\(libraryDirectory)' -o '\(output)'")
    }

    @Test func theHeaderCompilesAsC11AndCxx17WithWarningsAsErrors() throws {
        let c = try compile("Tools/examples/allreduce.c", output: "\(scratch)/allreduce")
        #expect(c.status == 0, "\(c.stderr)")
        let cxx = try compile("Tests/CAPI/header_check.cpp", output: "\(scratch)/header_check", cxx: true)
        #expect(cxx.status == 0, "\(cxx.stderr)")
        let run = try shell("'\(scratch)/header_check'")
        #expect(run.stdout.hasPrefix("chorusInvalidArgument"))
    }

    @Test func theCExampleAllReducesAcrossProcesses() throws {
        let build = try compile("Tools/examples/allreduce.c", output: "\(scratch)/allreduce")
        try #require(build.status == 0, "\(build.stderr)")
        let r = try runChorus(["run", "-n", "3", "--", "\(scratch)/allreduce", "1000003"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("all-reduce of 1000003 floats over 3 ranks: correct"))
    }

    @Test func badArgumentsReturnCodesWithMessagesOnEveryRank() throws {
        let build = try compile("Tests/CAPI/bad_arguments.c", output: "\(scratch)/bad_arguments")
        try #require(build.status == 0, "\(build.stderr)")
        let r = try runChorus(["run", "-n", "2", "--", "\(scratch)/bad_arguments"])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.components(separatedBy: "all bad arguments refused").count == 3, "\(r.stdout)")
        #expect(!r.stdout.contains("FAIL"), "\(r.stdout)")
    }

    @Test func thePythonBindingPassesItsChecksAndTrains() throws {
        guard (try? shell("command -v python3"))?.status == 0 else {
            print("SKIPPED: python3 is not installed; the Python binding is untested here")
            return
        }
        let env = ["CHORUS_LIBRARY": "\(libraryDirectory)/libChorusC.so", "PYTHONPATH": "\(repositoryRoot)/Tools/python"]
        let checks = try runChorus(["run", "-n", "3", "--", "python3", "Tests/CAPI/test_binding.py"], environment: env)
        #expect(checks.status == 0, "\(checks.stdout)\(checks.stderr)")
        #expect(checks.stdout.components(separatedBy: "python binding checks passed").count == 4, "\(checks.stdout)")
        #expect(!checks.stdout.contains("NumPy not installed"), "NumPy is part of the test environment (Tools/install-dependencies.sh)")
        let train = try runChorus(["run", "-n", "2", "--", "python3", "Tools/python/train_loop.py", "--steps", "30"], environment: env)
        #expect(train.status == 0, "\(train.stdout)\(train.stderr)")
        #expect(train.stdout.contains("weights identical on every rank: yes"))
    }

    @Test func anInstalledCopyLoadsWithoutTheSwiftToolchain() throws {
        let prefix = "\(scratch)/prefix"
        let install = try shell("Tools/install-c-api.sh --prebuilt '\(libraryDirectory)' '\(prefix)'")
        try #require(install.status == 0, "\(install.stderr)")
        let pc = try String(contentsOfFile: "\(prefix)/lib/pkgconfig/chorus.pc", encoding: .utf8)
        #expect(pc.contains("Libs: -L${libdir} -Wl,-rpath,${libdir} -lChorusC"))
        let build = try shell("cc -std=c11 -Wall -Werror $(pkg-config --cflags chorus) Tools/examples/allreduce.c $(pkg-config --libs chorus) -o '\(scratch)/installed-allreduce'",
                              environment: ["PKG_CONFIG_PATH": "\(prefix)/lib/pkgconfig"])
        try #require(build.status == 0, "\(build.stderr)")
        // Hide the toolchain's runtime directory in a private mount namespace, then run two ranks.
        guard getuid() == 0, (try? shell("command -v unshare"))?.status == 0 else {
            print("SKIPPED: hiding the Swift toolchain needs root and unshare; the installed copy was built but not run without it")
            return
        }
        let swiftPath = try shell("readlink -f \"$(command -v swift)\"").stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let runtime = URL(fileURLWithPath: swiftPath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("lib/swift/linux").path
        let port = freeLoopbackPort()
        let job = "RANK=%d WORLD_SIZE=2 CHORUS_RENDEZVOUS=127.0.0.1:\(port) CHORUS_JOB_TOKEN=capi-\(port) CHORUS_TIMEOUT=60 '\(scratch)/installed-allreduce' 4099"
        let script = """
            mount -t tmpfs none '\(runtime)' || exit 3
            [ -z "$(ls '\(runtime)')" ] || exit 4
            \(String(format: job, 1)) & other=$!
            \(String(format: job, 0)); status=$?
            wait $other || status=1
            exit $status
            """
        let r = try shell("unshare -m sh -c \"$SCRIPT\"", environment: ["SCRIPT": script])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("all-reduce of 4099 floats over 2 ranks: correct"))
    }
}

final class ScratchDirectory: Sendable {
    let path: String

    init() {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("chorus-capi-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}
