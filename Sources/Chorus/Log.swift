#if canImport(Glibc)
import Glibc
#endif

/// How much Chorus says on standard error (`CHORUS_DEBUG`).
public enum LogLevel: Int, Comparable, Sendable {
    case warn = 0, info, trace

    public init?(name: String) {
        switch name.uppercased() {
        case "WARN", "WARNING": self = .warn
        case "INFO": self = .info
        case "TRACE", "DEBUG": self = .trace
        default: return nil
        }
    }

    public static func < (a: LogLevel, b: LogLevel) -> Bool { a.rawValue < b.rawValue }

    var label: String { ["WARN", "INFO", "TRACE"][rawValue] }
}

/// Lines like `chorus rank 3 INFO: message` on standard error, written with one `write(2)` so
/// lines from ranks sharing a terminal do not interleave mid-line.
struct Log: Sendable {
    var level: LogLevel
    var rank: Int?

    func callAsFunction(_ level: LogLevel, _ message: @autoclosure () -> String) {
        guard level <= self.level else { return }
        let who = rank.map { "chorus rank \($0)" } ?? "chorus"
        let line = Array("\(who) \(level.label): \(message())\n".utf8)
        line.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
    }
}
