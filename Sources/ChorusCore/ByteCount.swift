/// A number of bytes.
///
/// Parsing follows two conventions, because two communities meet here:
/// - **Sizes of messages** (`chorus bench -b 8 -e 256M`, `chorus plan --size 1G`) use nccl-tests'
///   binary suffixes: `K`, `M`, `G`, `T` are powers of 1024, with or without a trailing `B`.
/// - **Explicit units** are always honoured: `KiB`/`MiB`/`GiB`/`TiB` are binary,
///   `kB`/`KB`/`MB`/`GB`/`TB` with the `B` spelled out *and* `decimal: true` are powers of 1000.
public struct ByteCount: Hashable, Comparable, Sendable, AdditiveArithmetic, CustomStringConvertible {
    public var bytes: Int

    @inlinable
    public init(_ bytes: Int) { self.bytes = bytes }

    @inlinable
    public init(bytes: Int) { self.bytes = bytes }

    public static let zero = ByteCount(0)

    @inlinable public static func kibibytes(_ n: Int) -> ByteCount { ByteCount(n << 10) }
    @inlinable public static func mebibytes(_ n: Int) -> ByteCount { ByteCount(n << 20) }
    @inlinable public static func gibibytes(_ n: Int) -> ByteCount { ByteCount(n << 30) }

    @inlinable public static func < (a: ByteCount, b: ByteCount) -> Bool { a.bytes < b.bytes }
    @inlinable public static func + (a: ByteCount, b: ByteCount) -> ByteCount { ByteCount(a.bytes + b.bytes) }
    @inlinable public static func - (a: ByteCount, b: ByteCount) -> ByteCount { ByteCount(a.bytes - b.bytes) }
    @inlinable public static func * (a: ByteCount, k: Int) -> ByteCount { ByteCount(a.bytes * k) }
    @inlinable public static func / (a: ByteCount, k: Int) -> ByteCount { ByteCount(a.bytes / k) }

    /// Binary-prefixed rendering: `8 B`, `4 KiB`, `1.5 MiB`, `256 MiB`, `1 GiB`.
    public var description: String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
        var value = Double(bytes)
        var unit = 0
        while abs(value) >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return "\(formatTrimmed(value, maxFractionDigits: 2)) \(units[unit])"
    }

    /// The nccl-tests spelling used in bench tables: the plain byte count.
    public var plain: String { String(bytes) }
}

extension ByteCount {
    /// Parses `8`, `4K`, `256M`, `1G`, `2GiB`, `96GiB`, `1.5M`; `decimal` makes `KB`/`MB`/`GB`/`TB`
    /// powers of 1000 (topology files say `GB` for 10^9 bytes, as vendors do).
    ///
    /// - Returns: `nil` when the text is not a size; the caller names the field in its error.
    public init?(parsing text: String, decimalWhenBSpelled decimal: Bool = false) {
        guard let (number, unit) = splitNumberAndUnit(text), number >= 0 else { return nil }
        let multiplier: Double
        switch unit {
        case "", "B": multiplier = 1
        case "K", "k": multiplier = 1024
        case "M": multiplier = 1024 * 1024
        case "G": multiplier = 1024 * 1024 * 1024
        case "T": multiplier = 1024 * 1024 * 1024 * 1024
        case "KiB": multiplier = 1024
        case "MiB": multiplier = 1024 * 1024
        case "GiB": multiplier = 1024 * 1024 * 1024
        case "TiB": multiplier = 1024 * 1024 * 1024 * 1024
        case "KB", "kB": multiplier = decimal ? 1e3 : 1024
        case "MB": multiplier = decimal ? 1e6 : 1024 * 1024
        case "GB": multiplier = decimal ? 1e9 : 1024 * 1024 * 1024
        case "TB": multiplier = decimal ? 1e12 : 1024 * 1024 * 1024 * 1024
        default: return nil
        }
        let value = number * multiplier
        guard value.isFinite, value <= Double(Int.max / 2), value.rounded() == value else { return nil }
        self.bytes = Int(value)
    }
}

// MARK: - Shared number helpers for the unit parsers

/// Splits `"1.5us"` into `(1.5, "us")` and `"200 Gbps"` into `(200, "Gbps")`.
///
/// Grammar: `[+-] digits [. digits] [(e|E) [+-] digits] [spaces] unit`. A leading sign is accepted
/// so that callers can say "negative" rather than "not a number".
package func splitNumberAndUnit(_ text: String) -> (Double, String)? {
    let chars = Array(text.trimmingSpaces().utf8)
    var i = 0
    func digits() -> Int {
        let start = i
        while i < chars.count, chars[i] >= UInt8(ascii: "0"), chars[i] <= UInt8(ascii: "9") { i += 1 }
        return i - start
    }
    if i < chars.count, chars[i] == UInt8(ascii: "-") || chars[i] == UInt8(ascii: "+") { i += 1 }
    var count = digits()
    if i < chars.count, chars[i] == UInt8(ascii: ".") {
        i += 1
        count += digits()
    }
    guard count > 0 else { return nil }
    if i < chars.count, chars[i] == UInt8(ascii: "e") || chars[i] == UInt8(ascii: "E") {
        let mark = i
        i += 1
        if i < chars.count, chars[i] == UInt8(ascii: "-") || chars[i] == UInt8(ascii: "+") { i += 1 }
        if digits() == 0 { i = mark }  // not an exponent: "1E" or "2Ebps" keeps its letters as the unit
    }
    guard let number = Double(String(decoding: chars[0..<i], as: UTF8.self)) else { return nil }
    let unit = String(decoding: chars[i...], as: UTF8.self).trimmingSpaces()
    return (number, unit)
}

extension String {
    package func trimmingSpaces() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}

/// Renders `value` with at most `maxFractionDigits` decimals and no trailing zeros.
package func formatTrimmed(_ value: Double, maxFractionDigits: Int) -> String {
    if value == value.rounded(), abs(value) < 1e15 { return String(Int(value)) }
    var scale = 1.0
    for _ in 0..<maxFractionDigits { scale *= 10 }
    let rounded = (value * scale).rounded() / scale
    if rounded == rounded.rounded(), abs(rounded) < 1e15 { return String(Int(rounded)) }
    var s = formatFixed(rounded, fractionDigits: maxFractionDigits)
    while s.hasSuffix("0") { s.removeLast() }
    if s.hasSuffix(".") { s.removeLast() }
    return s
}

/// Fixed-point rendering without Foundation: `formatFixed(3.14159, fractionDigits: 2) == "3.14"`.
package func formatFixed(_ value: Double, fractionDigits: Int) -> String {
    guard value.isFinite else { return value.isNaN ? "nan" : (value < 0 ? "-inf" : "inf") }
    var scale = 1.0
    for _ in 0..<fractionDigits { scale *= 10 }
    let negative = value < 0
    let scaled = (abs(value) * scale).rounded()
    guard scaled < 9.0e18 else { return String(value) }
    let whole = UInt64(scaled)
    let p = UInt64(scale)
    let intPart = whole / p
    var text = (negative && whole != 0 ? "-" : "") + String(intPart)
    if fractionDigits > 0 {
        var frac = String(whole % p)
        while frac.count < fractionDigits { frac = "0" + frac }
        text += "." + frac
    }
    return text
}
