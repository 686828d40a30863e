import ChorusAlgorithms
import ChorusCore
import ChorusSchedule
import Testing

@Suite("All-reduce generators (first pass)")
struct QuickAllReduceTests {
    static func generators(_ n: Int) -> [(String, Schedule)] {
        let spec = CollectiveSpec(.allReduce, ranks: n)
        var list: [(String, Schedule)] = [
            ("ring", AllReduce.ring(spec, rings: [.natural(n)])),
            ("bidirectional", AllReduce.ring(spec, rings: [.natural(n), RingPattern.natural(n).reversed], algorithm: "bidirectional-ring")),
            ("hd", AllReduce.halvingDoubling(spec)),
            ("rd", AllReduce.recursiveDoubling(spec)),
            ("dbt", AllReduce.doubleBinaryTree(spec)),
            ("direct", AllReduce.direct(spec)),
        ]
        if n % 2 == 0 { list.append(("hier", AllReduce.hierarchical(spec, groupSize: 2))) }
        if n == 16 { list.append(("torus", AllReduce.torusDimensions(spec, torus: TorusPattern(dimensions: [4, 4])))) }
        return list
    }

    @Test(arguments: [1, 2, 3, 4, 5, 6, 7, 8, 13, 16])
    func verifies(_ n: Int) throws {
        for (name, schedule) in Self.generators(n) {
            do {
                try SymbolicChecker.verify(schedule)
            } catch {
                Issue.record("\(name) n=\(n): \(error)")
            }
        }
    }

    @Test(arguments: [1, 2, 3, 5, 8])
    func interpreterMatchesDefinition(_ n: Int) throws {
        for (name, schedule) in Self.generators(n) {
            for m in [0, 1, 7, 33] {
                let inputs = (0..<n).map { r in (0..<m).flatMap { i -> [UInt8] in withUnsafeBytes(of: Int32(r * 1000 + i)) { Array($0) } } }
                let plan = Plan(schedule: schedule)
                for inPlace in [false, true] {
                    let out = try ReferenceInterpreter.run(plan, dataType: .int32, op: .sum, blockElements: m, inputs: inputs, inPlace: inPlace)
                    let expected = ReferenceInterpreter.expected(.allReduce, ranks: n, dataType: .int32, op: .sum, blockElements: m, inputs: inputs)
                    for r in 0..<n { #expect(out[r] == expected[r]!, "\(name) n=\(n) m=\(m) inPlace=\(inPlace) rank \(r)") }
                }
            }
        }
    }
}
