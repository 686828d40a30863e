import Chorus
import ChorusCore
import Testing

@Suite struct CommunicatorCollectiveTests {
    @Test(arguments: [1, 2, 3, 4, 5])
    func allReduceSumsEveryRanksArray(size: Int) throws {
        let comms = try Communicator.inProcess(size: size)
        let results = try onRanksOrThrow(comms) { comm -> [Float] in
            var values = (0..<37).map { Float($0 * (comm.rank + 1)) }
            try comm.allReduce(&values, op: .sum)
            return values
        }
        let factor = Float(size * (size + 1) / 2)
        for r in results { #expect(r == (0..<37).map { Float($0) * factor }) }
    }
}
