import ChorusCore

/// One row of a sweep: a size of one collective, type and op, in one placement, measured by
/// `chorus bench` or projected by `chorus sim`.
struct BenchRow {
    var collective: Collective
    var algorithm: String
    var bytes: Int
    var count: Int
    var dataType: DataType
    var op: ReduceOp
    var root: Int
    var inPlace: Bool
    var timeMicroseconds: Double
    var algbw: Double
    var busbw: Double
    var wrong: Int?
}

/// The nccl-tests table, JSON Lines and CSV that `chorus bench` and `chorus sim` both write, so a
/// projected sweep reads (and parses) like a measured one.
enum ResultTable {
    static func header(_ c: Collective, extraColumns: String = "", extraUnits: String = "") -> String {
        """
        #
        # collective: \(c)
        #                                                              out-of-place                       in-place
        #       size         count      type   redop    root     time   algbw   busbw #wrong     time   algbw   busbw #wrong  algorithm\(extraColumns)
        #        (B)    (elements)                               (us)  (GB/s)  (GB/s)            (us)  (GB/s)  (GB/s)\(extraUnits)
        """
    }

    /// The two placements of one size on one line.
    static func line(outOfPlace a: BenchRow, inPlace b: BenchRow, extra: String = "") -> String {
        let root = a.collective.hasRoot ? String(a.root) : "-1"
        var line = pad(String(a.bytes), 12) + "  " + pad(String(a.count), 12) + "  " + pad(a.dataType.ncclName, 8) + "  "
        line += pad(a.collective.reduces ? a.op.rawValue : "none", 6) + "  " + pad(root, 6)
        for row in [a, b] {
            line += "  " + pad(format(row.timeMicroseconds, row.timeMicroseconds < 1000 ? 2 : 1), 7)
            line += "  " + pad(format(row.algbw, 2), 6) + "  " + pad(format(row.busbw, 2), 6)
            line += "  " + pad(row.wrong.map(String.init) ?? "N/A", 5)
        }
        return line + "  " + (extra.isEmpty ? a.algorithm : padRight(a.algorithm, 18) + extra)
    }

    static let csvHeader = "collective,algorithm,transport,ranks,bytes,count,dtype,op,placement,time_us,algbw_gbps,busbw_gbps,wrong"

    static func csv(_ row: BenchRow, transport: String, ranks: Int) -> String {
        [row.collective.rawValue, row.algorithm, transport, String(ranks), String(row.bytes), String(row.count),
         row.dataType.ncclName, row.op.rawValue, row.inPlace ? "in-place" : "out-of-place",
         format(row.timeMicroseconds, 2), format(row.algbw, 3), format(row.busbw, 3),
         row.wrong.map(String.init) ?? ""].joined(separator: ",")
    }

    /// One JSON object with the keys every consumer of `--json` relies on, then `extra` fields
    /// (already-rendered JSON values).
    static func json(_ row: BenchRow, transport: String, ranks: Int, extra: [(String, String)] = []) -> String {
        func q(_ s: String) -> String { "\"" + s + "\"" }
        let fields: [(String, String)] = [
            ("collective", q(row.collective.rawValue)), ("algorithm", q(row.algorithm)), ("transport", q(transport)),
            ("ranks", String(ranks)), ("bytes", String(row.bytes)), ("count", String(row.count)),
            ("dtype", q(row.dataType.ncclName)), ("op", q(row.op.rawValue)),
            ("placement", q(row.inPlace ? "in-place" : "out-of-place")), ("time_us", format(row.timeMicroseconds, 3)),
            ("algbw_gbps", format(row.algbw, 4)), ("busbw_gbps", format(row.busbw, 4)),
            ("wrong", row.wrong.map(String.init) ?? "null"),
        ] + extra
        return "{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
    }
}
