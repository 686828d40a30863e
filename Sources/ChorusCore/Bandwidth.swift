/// A data rate in one direction, in bytes per second.
///
/// Topology files and bench output speak different dialects: network people write bits
/// (`200Gbps`), memory and interconnect people write bytes (`256GB/s`). Both parse here; the value
/// is always stored in bytes per second, and `GB` means 10^9 bytes as in nccl-tests' `algbw`.
public struct Bandwidth: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var bytesPerSecond: Double

    @inlinable
    public init(bytesPerSecond: Double) { self.bytesPerSecond = bytesPerSecond }

    @inlinable public static func gigabytesPerSecond(_ v: Double) -> Bandwidth { Bandwidth(bytesPerSecond: v * 1e9) }
    @inlinable public static func gigabitsPerSecond(_ v: Double) -> Bandwidth { Bandwidth(bytesPerSecond: v * 1e9 / 8) }

    public static let zero = Bandwidth(bytesPerSecond: 0)

    /// In 10^9 bytes per second, the unit of nccl-tests' `algbw` and `busbw` columns.
    @inlinable public var gigabytesPerSecond: Double { bytesPerSecond / 1e9 }

    @inlinable public static func < (a: Bandwidth, b: Bandwidth) -> Bool { a.bytesPerSecond < b.bytesPerSecond }
    @inlinable public static func + (a: Bandwidth, b: Bandwidth) -> Bandwidth { Bandwidth(bytesPerSecond: a.bytesPerSecond + b.bytesPerSecond) }
    @inlinable public static func * (a: Bandwidth, k: Double) -> Bandwidth { Bandwidth(bytesPerSecond: a.bytesPerSecond * k) }
    @inlinable public static func / (a: Bandwidth, k: Double) -> Bandwidth { Bandwidth(bytesPerSecond: a.bytesPerSecond / k) }

    /// The time to move `bytes` at this rate, with no latency.
    @inlinable
    public func transferTime(_ bytes: ByteCount) -> Duration {
        .seconds(Double(bytes.bytes) / bytesPerSecond)
    }

    /// Decimal byte units: `25 GB/s`, `1.02 TB/s`, `800 MB/s`.
    public var description: String {
        let units = ["B/s", "KB/s", "MB/s", "GB/s", "TB/s", "PB/s"]
        var value = bytesPerSecond
        var unit = 0
        while abs(value) >= 1000, unit < units.count - 1 {
            value /= 1000
            unit += 1
        }
        return "\(formatTrimmed(value, maxFractionDigits: 2)) \(units[unit])"
    }

    /// The units `init(parsing:)` understands, for error messages.
    public static let acceptedUnits = "bps, Kbps, Mbps, Gbps, Tbps (bits); B/s, KB/s, MB/s, GB/s, TB/s (10^3 bytes); KiB/s, MiB/s, GiB/s, TiB/s (2^10 bytes)"

    /// Parses a number with a unit: `200Gbps`, `100 Gb/s`, `256GB/s`, `12.5GB/s`, `1.5TB/s`, `900GiB/s`.
    ///
    /// A bare number is rejected: `bandwidth: 200` could be bits or bytes, and guessing is how
    /// topology files end up 8x wrong.
    /// - Returns: `nil` when the unit is missing or unknown; the number may be zero or negative
    ///   (the caller decides whether that is allowed and says so).
    public init?(parsing text: String) {
        guard let (number, unit) = splitNumberAndUnit(text), !unit.isEmpty else { return nil }
        guard let scale = Bandwidth.unitScale[unit] else { return nil }
        self.bytesPerSecond = number * scale
    }

    /// Whether `text` is a number followed by something that is not a bandwidth unit, or by
    /// nothing; lets callers tell "missing unit" from "not a number".
    public static func unitProblem(in text: String) -> UnitProblem {
        guard let (_, unit) = splitNumberAndUnit(text) else { return .notANumber }
        if unit.isEmpty { return .missingUnit }
        return unitScale[unit] == nil ? .unknownUnit(unit) : .none
    }

    private static let unitScale: [String: Double] = {
        var table: [String: Double] = [:]
        let decimal: [(String, Double)] = [("", 1), ("K", 1e3), ("k", 1e3), ("M", 1e6), ("G", 1e9), ("T", 1e12), ("P", 1e15)]
        for (prefix, factor) in decimal {
            table[prefix + "bps"] = factor / 8
            table[prefix + "bit/s"] = factor / 8
            if !prefix.isEmpty { table[prefix + "b/s"] = factor / 8 }
            table[prefix + "B/s"] = factor
            table[prefix + "Bps"] = factor
        }
        let binary: [(String, Double)] = [("Ki", 1024), ("Mi", 1_048_576), ("Gi", 1_073_741_824), ("Ti", 1_099_511_627_776)]
        for (prefix, factor) in binary {
            table[prefix + "B/s"] = factor
        }
        return table
    }()
}

/// Why a quantity did not parse, so an error can say what was expected.
public enum UnitProblem: Equatable, Sendable {
    case none
    case notANumber
    case missingUnit
    case unknownUnit(String)
}
