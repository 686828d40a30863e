import Foundation
import Testing

/// The verbs transport on RDMA hardware: every collective, a channel sweep through the
/// zero-copy writes, a killed rank. Runs only on a host with an InfiniBand or RoCE device and
/// is skipped, visibly, elsewhere (the protocol's device-free parts are tested in
/// ChorusTransportVerbsTests everywhere).
@Suite(.serialized, .enabled(if: verbsDevicePresent, "no usable InfiniBand or RoCE port on this host (chorus transports): the verbs hardware suite is skipped"))
struct VerbsJobTests {
    static let verbs = ["CHORUS_TRANSPORT": "verbs", "CHORUS_TIMEOUT": "60"]

    @Test(arguments: [2, 3, 4])
    func everyCollectiveIsCorrectOverVerbs(ranks: Int) throws {
        try expectEveryCollectiveCorrect(ranks: ranks, environment: Self.verbs, transport: "verbs")
    }

    @Test func everyCollectiveIsCheckedAcrossASweepWithSeveralChannels() throws {
        try expectCheckedChannelSweep(transport: "verbs", largest: "64M", factor: 16, environment: Self.verbs)
    }

    @Test func aKilledRankIsNamedByTheOthers() throws {
        let (_, survivors) = try killRankOneMidCollective(environment: ["CHORUS_TRANSPORT": "verbs", "CHORUS_TIMEOUT": "10"])
        for (status, text) in survivors {
            #expect(status == 1)
            #expect(text.contains("rank 1"), "\(text)")
        }
    }
}
