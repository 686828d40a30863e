import Foundation
import Testing

/// Jobs of real processes over the OFI transport with libfabric's tcp provider (loopback): every
/// collective checked, shared memory inside a host and OFI between hosts, a killed rank named,
/// a provider or library that is not there named. Skipped in builds without the RDMA trait.
@Suite(.serialized, .enabled(if: chorusHasOFI, "this build has no OFI transport (built without the RDMA trait)"))
struct OFIJobTests {
    static let ofi = ["CHORUS_TRANSPORT": "ofi", "CHORUS_OFI_PROVIDER": "tcp", "CHORUS_TIMEOUT": "60"]

    @Test(arguments: [2, 3, 4])
    func everyCollectiveIsCorrectOverOFI(ranks: Int) throws {
        try expectEveryCollectiveCorrect(ranks: ranks, environment: Self.ofi, transport: "ofi")
    }

    @Test func everyCollectiveIsCheckedAcrossASweepWithSeveralChannels() throws {
        // Four channel copies (four streams per pair), sizes from 4 B to 3 MiB.
        let r = try expectCheckedChannelSweep(transport: "ofi", largest: "3M", factor: 64, environment: Self.ofi)
        #expect(r.stdout.contains("3 rank(s), transport ofi"), "\(r.stdout)")
    }

    @Test func ranksOnSeveralHostsUseSharedMemoryInsideAHostAndOFIBetween() throws {
        // Five ranks on two hosts (three and two, by CHORUS_HOSTID); auto takes OFI between hosts
        // because CHORUS_OFI_PROVIDER names a provider every rank has.
        let r = try runChorus(["run", "-n", "5", "--", "sh", "-c", "CHORUS_HOSTID=host$((RANK / 3)) exec \"$0\" bench --collective all -b 4 -e 1M -f 32 -n 2 -w 1 --check",
                               chorusExecutable], environment: ["CHORUS_OFI_PROVIDER": "tcp", "CHORUS_TIMEOUT": "60", "CHORUS_DEBUG": "INFO"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("5 rank(s), transport ofi+shm"), "\(r.stdout)")
        #expect(r.stderr.contains("OFI between hosts (every rank has ofi:tcp)"), "\(r.stderr)")
        #expect(r.stdout.contains("# Out of bounds values : 0 OK"))
    }

    @Test func withoutAnRDMAProviderAutoSaysWhyItUsesTCP() throws {
        let r = try runChorus(["run", "-n", "2", "--", "sh", "-c", "CHORUS_HOSTID=host$RANK exec \"$0\" hello", chorusExecutable],
                              environment: ["CHORUS_DEBUG": "INFO", "CHORUS_TIMEOUT": "60"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("using TCP between every pair (no RDMA transport on rank"), "\(r.stderr)")
        #expect(r.stdout.components(separatedBy: "transport tcp").count == 3, "\(r.stdout)")
    }

    @Test func transportsSaysWhatThisHostCanRunAndWhyNot() throws {
        let r = try runChorus(["transports", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let rows = r.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(rows.map { $0["name"] as? String } == ["shm", "tcp", "ofi", "verbs"])
        let ofi = rows.first { $0["name"] as? String == "ofi" }
        #expect(ofi?["available"] as? Bool == true && (ofi?["detail"] as? String)?.contains("tcp") == true, "\(r.stdout)")
        if !verbsDevicePresent {
            let verbs = rows.first { $0["name"] as? String == "verbs" }
            #expect(verbs?["available"] as? Bool == false && (verbs?["detail"] as? String)?.contains("no RDMA device") == true, "\(r.stdout)")
        }
        let named = try runChorus(["transports"], environment: ["CHORUS_OFI_PROVIDER": "nonesuch"])
        #expect(named.stdout.contains("CHORUS_OFI_PROVIDER=nonesuch is not offered here"), "\(named.stdout)")
    }

    @Test func aKilledRankIsNamedByTheOthers() throws {
        // A timeout far beyond the test: ranks on one host find a dead peer by its pid.
        let (pid, survivors) = try killRankOneMidCollective(environment: ["CHORUS_TRANSPORT": "ofi", "CHORUS_OFI_PROVIDER": "tcp", "CHORUS_TIMEOUT": "120"])
        for (status, text) in survivors {
            #expect(status == 1)
            #expect(text.contains("rank 1 (pid \(pid)) is gone"), "\(text)")
        }
    }

    @Test func aProviderThatIsNotHereIsNamedByEveryRank() throws {
        let r = try runChorus(["bench", "--ranks", "2", "--transport", "ofi", "-b", "8", "-e", "8"],
                              environment: ["CHORUS_OFI_PROVIDER": "nonesuch", "CHORUS_TIMEOUT": "30"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("provider 'nonesuch'"), "\(r.stderr)")
        #expect(r.stderr.contains("providers offered here:"), "\(r.stderr)")
    }

    @Test func aLibfabricThatCannotBeLoadedIsNamed() throws {
        let r = try runChorus(["bench", "--ranks", "2", "--transport", "ofi", "-b", "8", "-e", "8"],
                              environment: ["CHORUS_OFI_LIBRARY": "/nonexistent/libfabric.so.1", "CHORUS_TIMEOUT": "30"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("cannot load /nonexistent/libfabric.so.1"), "\(r.stderr)")
    }
}

/// Hosts without libfabric: the same binary runs, and auto says why it uses TCP.
@Suite(.serialized, .enabled(if: chorusHasOFI, "this build has no OFI transport (built without the RDMA trait)"))
struct NoLibfabricTests {
    @Test func autoRunsWithoutLibfabricAndSaysWhy() throws {
        let r = try runChorus(["run", "-n", "2", "--", "sh", "-c", "CHORUS_HOSTID=host$RANK exec \"$0\" hello --check", chorusExecutable],
                              environment: ["CHORUS_OFI_LIBRARY": "/nonexistent/libfabric.so.1", "CHORUS_DEBUG": "INFO", "CHORUS_TIMEOUT": "60"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("cannot load /nonexistent/libfabric.so.1"), "\(r.stderr)")
        #expect(r.stdout.components(separatedBy: "transport tcp").count == 3, "\(r.stdout)")
    }
}
