import ChorusCore
import ChorusExec
import Testing

@Suite("Call signatures")
struct CallSignatureTests {
    @Test func everySignatureSurvivesPackingAndTypesAndOpsKeepTheirCodes() {
        for (code, type) in DataType.allCases.enumerated() {
            #expect(CallSignature.index(of: type) == code, "\(type)")
            for collective in Collective.allCases {
                for op in ReduceOp.allCases {
                    let signature = CallSignature(collective, count: 1_000_003, dataType: type, op: op, root: 7)
                    #expect(CallSignature(packed: signature.packed) == signature, "\(signature)")
                }
            }
        }
        for (code, op) in ReduceOp.allCases.enumerated() {
            #expect(CallSignature.index(of: op) == code, "\(op)")
        }
    }
}
