import ArgumentParser
import ChorusCore

/// A size flag: `8`, `4K`, `256M`, `1G` (binary, as nccl-tests reads them).
struct SizeArgument: ExpressibleByArgument, Sendable {
    var bytes: Int

    init?(argument: String) {
        guard let b = ByteCount(parsing: argument) else { return nil }
        bytes = b.bytes
    }

    static var defaultCompletionKind: CompletionKind { .default }

    /// How `--help` shows a default: as it would be typed (`32M`, `1G`, `8`).
    var defaultValueDescription: String {
        for (suffix, shift) in [("T", 40), ("G", 30), ("M", 20), ("K", 10)] where bytes > 0 && bytes % (1 << shift) == 0 {
            return "\(bytes >> shift)\(suffix)"
        }
        return String(bytes)
    }
}

extension Collective: ExpressibleByArgument {
    public init?(argument: String) { self.init(name: argument) }
    public static var allValueStrings: [String] { allCases.map(\.rawValue) }
}

extension DataType: ExpressibleByArgument {
    public init?(argument: String) { self.init(name: argument) }
    public static var allValueStrings: [String] { allCases.map(\.rawValue) }
}

extension ReduceOp: ExpressibleByArgument {
    public init?(argument: String) { self.init(name: argument) }
    public static var allValueStrings: [String] { allCases.map(\.rawValue) }
}

/// The environment variables Chorus reads, in one place (DESIGN.md's table).
enum ChorusEnvironment {
    static func value(_ name: String) -> String? {
        guard let p = getenv(name) else { return nil }
        let s = String(cString: p)
        return s.isEmpty ? nil : s
    }
}

#if canImport(Glibc)
import Glibc
#endif
