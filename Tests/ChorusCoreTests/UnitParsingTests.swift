import ChorusCore
import Testing

@Suite("Units")
struct UnitParsingTests {
    @Test(arguments: [
        ("200Gbps", 25e9), ("100 Gb/s", 12.5e9), ("256GB/s", 256e9), ("12.5GB/s", 12.5e9),
        ("1.5TB/s", 1.5e12), ("900GiB/s", 900 * 1_073_741_824.0), ("800Mbps", 100e6), ("1e3B/s", 1e3),
    ])
    func bandwidthParses(_ text: String, _ bytesPerSecond: Double) throws {
        let parsed = try #require(Bandwidth(parsing: text))
        #expect(abs(parsed.bytesPerSecond - bytesPerSecond) < 1e-6 * bytesPerSecond)
    }

    @Test func bandwidthRejectsBareNumbersAndUnknownUnits() {
        #expect(Bandwidth(parsing: "200") == nil)
        #expect(Bandwidth.unitProblem(in: "200") == .missingUnit)
        #expect(Bandwidth(parsing: "200Gbit") == nil)
        #expect(Bandwidth.unitProblem(in: "200Gbit") == .unknownUnit("Gbit"))
        #expect(Bandwidth.unitProblem(in: "fast") == .notANumber)
        #expect(Bandwidth.unitProblem(in: "") == .notANumber)
    }

    @Test(arguments: [("1.5us", 1500.0), ("330ns", 330), ("15 µs", 15000), ("2ms", 2e6), ("1s", 1e9), ("0.5ns", 0.5)])
    func durationParses(_ text: String, _ nanoseconds: Double) throws {
        let parsed = try #require(Duration(parsing: text))
        #expect(abs(parsed.inSeconds * 1e9 - nanoseconds) < 1e-9)
    }

    @Test func durationRejectsBareNumbers() {
        #expect(Duration(parsing: "1.5") == nil)
        #expect(Duration.unitProblem(in: "1.5") == .missingUnit)
        #expect(Duration.unitProblem(in: "3 fortnights") == .unknownUnit("fortnights"))
    }

    @Test(arguments: [("8", 8), ("4K", 4096), ("256M", 268_435_456), ("1G", 1_073_741_824), ("1.5M", 1_572_864), ("96GiB", 103_079_215_104)])
    func sizesUseBinarySuffixes(_ text: String, _ bytes: Int) throws {
        #expect(try #require(ByteCount(parsing: text)).bytes == bytes)
    }

    @Test func decimalSizesWhenTheBIsSpelledAndAsked() {
        #expect(ByteCount(parsing: "32GB", decimalWhenBSpelled: true)?.bytes == 32_000_000_000)
        #expect(ByteCount(parsing: "32GB")?.bytes == 32 * 1_073_741_824)
        #expect(ByteCount(parsing: "-1") == nil)
        #expect(ByteCount(parsing: "1.3") == nil)  // not a whole number of bytes
        #expect(ByteCount(parsing: "lots") == nil)
    }

    @Test func rendering() {
        #expect(Bandwidth(bytesPerSecond: 25e9).description == "25 GB/s")
        #expect(Bandwidth(bytesPerSecond: 1.024e12).description == "1.02 TB/s")
        #expect(ByteCount(268_435_456).description == "256 MiB")
        #expect(Duration.nanoseconds(1500).chorusDescription == "1.5 µs")
        #expect(Duration.nanoseconds(936).chorusDescription == "936 ns")
    }

    @Test func namesAndBusBandwidthFactors() {
        #expect(DataType(name: "float") == .float32)
        #expect(DataType(name: "bf16") == .bfloat16)
        #expect(DataType(name: "half")?.size == 2)
        #expect(DataType(name: "complex") == nil)
        #expect(ReduceOp(name: "avg") == .avg)
        #expect(Collective(name: "all_reduce") == .allReduce)
        #expect(Collective(name: "ReduceScatter") == .reduceScatter)
        #expect(Collective.allReduce.busBandwidthFactor(ranks: 8) == 1.75)
        #expect(Collective.allGather.busBandwidthFactor(ranks: 4) == 0.75)
        #expect(Collective.broadcast.busBandwidthFactor(ranks: 4) == 1)
    }
}
