import ChorusCore
import ChorusSchedule
import Testing

@Suite("Reference interpreter and reductions")
struct InterpreterTests {
    static func bytes<T>(_ values: [T]) -> [UInt8] { values.flatMap { v in withUnsafeBytes(of: v) { Array($0) } } }
    static func values<T>(_ bytes: [UInt8], _: T.Type) -> [T] {
        bytes.withUnsafeBytes { raw in (0..<(bytes.count / MemoryLayout<T>.stride)).map { raw.loadUnaligned(fromByteOffset: $0 * MemoryLayout<T>.stride, as: T.self) } }
    }

    @Test(arguments: ReduceOp.allCases)
    func everyOpOnFloatsAndIntegers(_ op: ReduceOp) throws {
        let plan = Plan(schedule: twoRankRing())
        let f = try ReferenceInterpreter.run(plan, dataType: .float32, op: op, blockElements: 2,
                                             inputs: [Self.bytes([Float(3), -1]), Self.bytes([Float(5), 4])])
        let wantF: [Float] = switch op {
        case .sum: [8, 3]
        case .prod: [15, -4]
        case .min: [3, -1]
        case .max: [5, 4]
        case .avg: [4, 1.5]
        }
        #expect(Self.values(f[0], Float.self) == wantF && f[0] == f[1])
        let i = try ReferenceInterpreter.run(plan, dataType: .int8, op: op, blockElements: 2,
                                             inputs: [Self.bytes([Int8(100), -7]), Self.bytes([Int8(100), 2])])
        let wantI: [Int8] = switch op {
        case .sum: [-56, -5]        // 200 wraps to -56
        case .prod: [16, -14]       // 10000 wraps to 16
        case .min: [100, -7]
        case .max: [100, 2]
        case .avg: [-28, -2]        // (-56) / 2, (-5) / 2 truncated toward zero
        }
        #expect(Self.values(i[0], Int8.self) == wantI)
    }

    @Test func halfPrecisionTypesAccumulateInFloatAndRoundToNearestEven() throws {
        let plan = Plan(schedule: twoRankRing())
        // bfloat16: 1 + 2^-9 is not representable; 1 + 2^-8 + 2^-9 rounds up to 1 + 2^-7.
        let one: UInt16 = 0x3F80
        let tiny = ReferenceReduction.bfloat16(Float(0.005859375))  // 2^-8 + 2^-9
        let b = try ReferenceInterpreter.run(plan, dataType: .bfloat16, op: .sum, blockElements: 2,
                                             inputs: [Self.bytes([one, one]), Self.bytes([tiny, tiny])])
        #expect(Self.values(b[0], UInt16.self) == [0x3F81, 0x3F81])
        // float16: NaN stays NaN, infinities add.
        let nan = Float16.nan.bitPattern, inf = Float16.infinity.bitPattern, two = Float16(2).bitPattern
        let h = try ReferenceInterpreter.run(plan, dataType: .float16, op: .max, blockElements: 2,
                                             inputs: [Self.bytes([nan, inf]), Self.bytes([two, two])])
        let out = Self.values(h[0], UInt16.self).map { Float16(bitPattern: $0) }
        #expect(out[0].isNaN && out[1] == .infinity)
        #expect(ReferenceReduction.bfloat16(.nan) & 0x7FC0 == 0x7FC0)
    }

    @Test func slicingAndChannelsDoNotChangeTheResult() throws {
        let schedule = twoRankRing()
        let inputs = [Self.bytes((0..<999).map { Float($0) * 0.1 }), Self.bytes((0..<999).map { Float($0) * -0.3 + 7 })]
        let reference = try ReferenceInterpreter.run(Plan(schedule: schedule), dataType: .float32, op: .sum, blockElements: 999, inputs: inputs)
        let sliced = try ReferenceInterpreter.run(Plan(schedule: schedule, channels: 3, sliceBytes: 100), dataType: .float32, op: .sum,
                                                  blockElements: 999, inputs: inputs)
        #expect(sliced == reference)
        // Chunks of 500 floats (2,000 bytes) over 3 channels are 667 bytes each: 7 slices of at most 100.
        #expect(Plan(schedule: schedule, channels: 3, sliceBytes: 100).pieces(blockElements: 999, elementSize: 4) == 3 * 7)
    }

    @Test func chunkLayoutSplitsRemaindersEvenly() {
        let layout = ChunkLayout.standard(.allGather, ranks: 3, chunksPerBlock: 4)
        #expect(layout.chunkCount(.output) == 12 && layout.chunkCount(.input) == 4)
        // 10 elements per block in 4 chunks: 2, 3, 2, 3.
        #expect((0..<4).map { layout.elements(ofChunk: $0, blockElements: 10).count } == [2, 3, 2, 3])
        #expect(layout.elements(ofChunk: 5, blockElements: 10) == 12..<15)
        #expect(layout.elements(ofChunk: 5, piece: 1, of: 2, blockElements: 10) == 13..<15)
    }
}
