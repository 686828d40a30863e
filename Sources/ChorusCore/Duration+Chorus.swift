extension Duration {
    /// The duration as a floating-point number of seconds (for the cost model's arithmetic).
    @inlinable
    public var inSeconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) * 1e-18
    }

    /// The duration in microseconds, the unit of nccl-tests' `time` column.
    @inlinable
    public var inMicroseconds: Double { inSeconds * 1e6 }

    /// The units `init(parsing:)` understands, for error messages.
    public static let acceptedUnits = "ns, us (or µs), ms, s"

    /// Parses `1.5us`, `330ns`, `15 µs`, `2ms`, `1s`.
    ///
    /// A bare number is rejected: `latency: 1.5` could be any unit.
    /// - Returns: `nil` when the unit is missing or unknown.
    public init?(parsing text: String) {
        guard let (number, unit) = splitNumberAndUnit(text), !unit.isEmpty else { return nil }
        guard let scale = Duration.unitScale(unit) else { return nil }
        guard number.isFinite, abs(number * scale) < 1e9 else { return nil }
        // Whole nanoseconds with a fractional remainder in attoseconds, so "1.5us" is exact.
        let nanos = number * scale * 1e9
        let whole = nanos.rounded(.towardZero)
        let fraction = nanos - whole
        self = .nanoseconds(Int64(whole)) + .init(secondsComponent: 0, attosecondsComponent: Int64((fraction * 1e9).rounded()))
    }

    /// Why `text` is not a duration, for error messages.
    public static func unitProblem(in text: String) -> UnitProblem {
        guard let (_, unit) = splitNumberAndUnit(text) else { return .notANumber }
        if unit.isEmpty { return .missingUnit }
        return unitScale(unit) == nil ? .unknownUnit(unit) : .none
    }

    private static func unitScale(_ unit: String) -> Double? {
        switch unit {
        case "ns": return 1e-9
        case "us", "µs", "μs": return 1e-6
        case "ms": return 1e-3
        case "s": return 1
        default: return nil
        }
    }

    /// Short human rendering with the largest sensible unit: `936 ns`, `1.5 µs`, `15 µs`, `2.34 ms`, `1.2 s`.
    public var chorusDescription: String {
        let s = inSeconds
        let a = abs(s)
        if a == 0 { return "0 s" }
        if a < 1e-6 { return "\(formatTrimmed(s * 1e9, maxFractionDigits: 2)) ns" }
        if a < 1e-3 { return "\(formatTrimmed(s * 1e6, maxFractionDigits: 2)) µs" }
        if a < 1 { return "\(formatTrimmed(s * 1e3, maxFractionDigits: 3)) ms" }
        return "\(formatTrimmed(s, maxFractionDigits: 3)) s"
    }
}

/// `ContinuousClock` read as the time since a fixed instant (the first read in the process),
/// for hot paths that keep times across a loop: `Duration` is a frozen type, while an optional
/// `ContinuousClock.Instant` (resilient) held in a frame costs calls for its type's metadata
/// and value operations on every pass, whether it is used or not.
public enum ElapsedTime {
    /// The fixed instant; `epoch + now()` is the current instant.
    public static let epoch = ContinuousClock.now

    /// The time since `epoch`. Not inlined, so the instant it reads stays out of callers' frames.
    @inline(never)
    public static func now() -> Duration { ContinuousClock.now - epoch }
}
