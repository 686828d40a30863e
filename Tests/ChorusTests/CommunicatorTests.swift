import Chorus
import ChorusCore
import ChorusSchedule
import Foundation
import Testing

/// The raw-buffer API against the collective's definition (`ReferenceInterpreter.expected`),
/// for every collective × data type × op, in and out of place, over the in-process transport.
/// One world per rank count runs its whole grid.
@Suite struct CommunicatorCollectiveTests {
    @Test(arguments: [1, 2, 3, 4, 5, 8])
    func everyCollectiveTypeOpAndPlacement(size: Int) throws {
        let comms = try Communicator.inProcess(size: size, configuration: ChorusConfiguration(timeout: .seconds(5)))
        let cases = CollectiveCheck.grid(ranks: size)
        let problems = try onRanksOrThrow(comms) { comm -> [String] in
            var problems: [String] = []
            // Every rank runs every case (stopping early would leave the others waiting).
            for c in cases {
                if let p = try c.run(on: comm), problems.count < 6 { problems.append(p) }
            }
            return problems
        }.flatMap { $0 }
        #expect(problems.isEmpty, "\(problems.prefix(6).joined(separator: "\n"))")
    }
}
