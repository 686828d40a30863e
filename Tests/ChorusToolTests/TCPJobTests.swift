import Foundation
import Testing

/// Jobs of real processes over TCP (loopback): every collective checked, host identity choosing
/// TCP, a killed rank named, a bad interface named.
@Suite(.serialized) struct TCPJobTests {
    @Test(arguments: [2, 3, 4])
    func everyCollectiveIsCorrectOverTCP(ranks: Int) throws {
        try expectEveryCollectiveCorrect(ranks: ranks, environment: ["CHORUS_TRANSPORT": "tcp", "CHORUS_TIMEOUT": "60"], transport: "tcp")
    }

    @Test func ranksOnDifferentHostsUseTCP() throws {
        // Two "hosts" (CHORUS_HOSTID differs per rank): auto must not pick shared memory.
        let r = try runChorus(["run", "-n", "2", "--", "sh", "-c", "CHORUS_HOSTID=host$RANK exec \"$0\" hello --check", chorusExecutable])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.components(separatedBy: "transport tcp").count == 3, "\(r.stdout)")
    }

    @Test func ranksOnSeveralHostsUseSharedMemoryInsideAHostAndTCPBetween() throws {
        // Hosts by CHORUS_HOSTID: ranks 0 and 1 share one, rank 2 is alone on another.
        let r = try runChorus(["run", "-n", "3", "--", "sh", "-c", "CHORUS_HOSTID=host$((RANK / 2)) exec \"$0\" hello --check", chorusExecutable],
                              environment: ["CHORUS_TIMEOUT": "60"])
        #expect(r.status == 0, "\(r.stderr)")
        for line in ["rank 0 of 3: transport tcp+shm (shm: 1; tcp: 2)", "rank 1 of 3: transport tcp+shm (shm: 0; tcp: 2)",
                     "rank 2 of 3: transport tcp (tcp: 0, 1)"] {
            #expect(r.stdout.contains(line), "\(r.stdout)")
        }
        let summaries = r.stdout.split(separator: "\n").filter { $0.contains("calls checked") }
        #expect(summaries.count == 3 && summaries.allSatisfy { $0.hasSuffix(" 0 wrong") }, "\(summaries)")
    }

    @Test func everyCollectiveIsCorrectOverMixedTransports() throws {
        // Five ranks on two hosts (three and two): every collective, sizes from 4 B to 1 MiB.
        let r = try runChorus(["run", "-n", "5", "--", "sh", "-c", "CHORUS_HOSTID=host$((RANK / 3)) exec \"$0\" bench --collective all -b 4 -e 1M -f 32 -n 2 -w 1 --check",
                               chorusExecutable], environment: ["CHORUS_TIMEOUT": "60"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("5 rank(s), transport tcp+shm"), "\(r.stdout)")
        #expect(r.stdout.contains("# Out of bounds values : 0 OK"))
    }

    @Test func everyCollectiveIsCorrectOverSeveralConnectionsPerPeer() throws {
        // Four channel copies spread over three connections per pair; sizes up to 3 MiB take the
        // direct-read path too.
        try expectCheckedChannelSweep(transport: "tcp", largest: "3M", factor: 64,
                                      environment: ["CHORUS_SOCKET_NSTREAMS": "3", "CHORUS_TIMEOUT": "60"])
    }

    @Test func ranksWithDifferentConnectionCountsAreNamed() throws {
        let r = try runChorus(["run", "-n", "2", "--", "sh", "-c", "CHORUS_SOCKET_NSTREAMS=$((RANK + 1)) exec \"$0\" hello", chorusExecutable],
                              environment: ["CHORUS_TRANSPORT": "tcp", "CHORUS_TIMEOUT": "60"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("has CHORUS_SOCKET_NSTREAMS="), "\(r.stderr)")
        #expect(r.stderr.contains("every rank must use the same"), "\(r.stderr)")
    }

    @Test func largeMessagesAreChecked() throws {
        let r = try runChorus(["bench", "--ranks", "2", "--transport", "tcp", "--collective", "all", "-b", "3M", "-e", "3M", "-n", "1", "-w", "0"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("# Out of bounds values : 0 OK"))
        #expect(r.stdout.contains("transport tcp"))
    }

    @Test func anInterfaceThatDoesNotExistIsNamed() throws {
        let r = try runChorus(["bench", "--ranks", "2", "--transport", "tcp", "-b", "8", "-e", "8"],
                              environment: ["CHORUS_SOCKET_IFNAME": "nonexistent0"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("CHORUS_SOCKET_IFNAME=nonexistent0: no interface of that name"), "\(r.stderr)")
    }

    @Test func aKilledRankIsNamedByTheOthers() throws {
        let (_, survivors) = try killRankOneMidCollective(environment: ["CHORUS_TRANSPORT": "tcp"])
        for (status, text) in survivors {
            #expect(status == 1)
            #expect(text.contains("rank 1"), "\(text)")
        }
    }
}
