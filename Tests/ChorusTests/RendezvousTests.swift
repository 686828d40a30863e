@testable import Chorus
import ChorusCore
import Foundation
import Testing

/// A free TCP port on the loopback (bound and released; the small race is harmless in tests).
func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// Joins ranks through the TCP rendezvous store, each on its own thread.
func join(ranks: [Int], size: Int, port: Int, tokens: [Int: String] = [:], timeout: Duration = .seconds(20),
          delays: [Int: Double] = [:]) -> [Int: Result<Communicator, Error>] {
    let results = Results<Communicator>(count: size)
    let group = DispatchGroup()
    for r in ranks {
        group.enter()
        Thread {
            if let d = delays[r] { Thread.sleep(forTimeInterval: d) }
            do {
                let c = try Communicator(rank: r, size: size, rendezvous: "127.0.0.1:\(port)", jobToken: tokens[r] ?? "job-42",
                                         configuration: ChorusConfiguration(timeout: timeout))
                results.set(r, .success(c))
            } catch {
                results.set(r, .failure(error))
            }
            group.leave()
        }.start()
    }
    group.wait()
    var out: [Int: Result<Communicator, Error>] = [:]
    for r in ranks { out[r] = results.value(r) }
    return out
}

@Suite(.serialized) struct RendezvousTests {
    @Test func ranksStartingInAnyOrderMeetAndRunCollectives() throws {
        // Rank 0 (the store) starts last: the others retry until it listens.
        let joined = join(ranks: [0, 1, 2, 3], size: 4, port: freePort(), delays: [0: 0.3, 2: 0.1])
        let comms = try (0..<4).map { try joined[$0]!.get() }
        #expect(comms.allSatisfy { $0.transportKind == "inproc" })
        let sums = try onRanksOrThrow(comms) { comm -> [Int64] in try comm.allReduce([Int64(comm.rank), 1]) }
        #expect(sums.allSatisfy { $0 == [6, 4] })
    }

    @Test func aWrongTokenIsRefusedAndTheOthersNameTheMissingRank() throws {
        let joined = join(ranks: [0, 1, 2], size: 3, port: freePort(), tokens: [2: "intruder"], timeout: .seconds(1.5))
        let refused = "\(joined[2]!.error!)"
        #expect(refused.contains("refused rank 2"), "\(refused)")
        #expect(refused.contains("token"), "\(refused)")
        for r in [0, 1] {
            let message = "\(joined[r]!.error!)"
            #expect(message.contains("rank 2 of 3 never arrived"), "\(message)")
        }
    }

    @Test func ranksThatNeverArriveAreNamed() throws {
        let joined = join(ranks: [0, 2], size: 5, port: freePort(), timeout: .seconds(1))
        for r in [0, 2] {
            let message = "\(joined[r]!.error!)"
            #expect(message.contains("ranks 1, 3-4 of 5 never arrived"), "\(message)")
        }
    }

    @Test func aStoreThatIsNotThereIsReportedWithItsAddress() throws {
        let port = freePort()
        let joined = join(ranks: [1], size: 2, port: port, timeout: .milliseconds(500))
        let message = "\(joined[1]!.error!)"
        #expect(message.contains("could not reach the rendezvous store at 127.0.0.1:\(port)"), "\(message)")
    }

    @Test func aNamedTransportThatIsNotAvailableIsAnError() throws {
        var configuration = ChorusConfiguration(timeout: .seconds(5))
        configuration.transport = "verbs"
        let error = #expect(throws: ChorusError.self) {
            _ = try Communicator(rank: 0, size: 1, rendezvous: "127.0.0.1:0", jobToken: "t", configuration: configuration)
        }
        #expect("\(error!)".contains("CHORUS_TRANSPORT=verbs"))
    }

    @Test func aStoreSpeakingToAStrangerDropsIt() throws {
        // Garbage on the store's port is refused, and the job still forms.
        let port = freePort()
        let comms = Results<Communicator>(count: 2)
        let group = DispatchGroup()
        for r in 0..<2 {
            group.enter()
            Thread {
                if r == 1 { Thread.sleep(forTimeInterval: 0.3) }
                do { comms.set(r, .success(try Communicator(rank: r, size: 2, rendezvous: "127.0.0.1:\(port)", jobToken: "t",
                                                              configuration: ChorusConfiguration(timeout: .seconds(10))))) }
                catch { comms.set(r, .failure(error)) }
                group.leave()
            }.start()
        }
        Thread.sleep(forTimeInterval: 0.15)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let connected = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        if connected == 0 { _ = "GET / HTTP/1.1\r\n\r\n".withCString { send(fd, $0, 18, Int32(MSG_NOSIGNAL)) } }
        close(fd)
        group.wait()
        #expect(comms.values.allSatisfy { (try? $0.get()) != nil })
    }

    @Test func addressesAreParsedWithClearErrors() throws {
        #expect(try RendezvousClient.split("node1:29500") == ("node1", 29500))
        #expect(try RendezvousClient.split("[::1]:80") == ("::1", 80))
        for bad in ["node1", "node1:http", ":80", "::1:80", "h:70000"] {
            #expect(throws: ChorusError.self) { _ = try RendezvousClient.split(bad) }
        }
    }
}

@Suite struct LaunchEnvironmentTests {
    @Test func torchrunVariables() throws {
        let l = try LaunchEnvironment(environment: ["RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1",
                                                    "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500", "TORCHELASTIC_RUN_ID": "run7"])
        #expect(l == LaunchEnvironment(launcher: "torchrun", rank: 3, size: 8, localRank: 1, rendezvous: "10.0.0.1:29500", jobToken: "run7"))
    }

    @Test func openMPIWithChorusRendezvousAndToken() throws {
        let l = try LaunchEnvironment(environment: ["OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_LOCAL_RANK": "0",
                                                    "CHORUS_RENDEZVOUS": "h:1234", "CHORUS_JOB_TOKEN": "secret", "OMPI_MCA_ess_base_jobid": "99"])
        #expect(l == LaunchEnvironment(launcher: "openmpi", rank: 0, size: 2, localRank: 0, rendezvous: "h:1234", jobToken: "secret"))
    }

    @Test func pmiAndIPv6MasterAddress() throws {
        let l = try LaunchEnvironment(environment: ["PMI_RANK": "1", "PMI_SIZE": "4", "MASTER_ADDR": "fe80::1", "MASTER_PORT": "7", "PMIX_NAMESPACE": "ns"])
        #expect(l.rendezvous == "[fe80::1]:7")
        #expect(l.jobToken == "ns")
        #expect(l.launcher == "pmi")
    }

    @Test func slurmUsesTheFirstHostOfTheStep() throws {
        let l = try LaunchEnvironment(environment: ["SLURM_PROCID": "5", "SLURM_NTASKS": "16", "SLURM_LOCALID": "1",
                                                    "SLURM_STEP_NODELIST": "trn[007-010,12],head", "SLURM_JOB_ID": "123456"])
        #expect(l.rendezvous == "trn007:23456")
        #expect(l.jobToken == "123456")
        #expect(LaunchEnvironment.firstHost(ofNodeList: "a,b") == "a")
        #expect(LaunchEnvironment.firstHost(ofNodeList: "gpu[3]x") == "gpu3x")
        #expect(LaunchEnvironment.firstHost(ofNodeList: "bad[") == nil)
    }

    @Test(arguments: [
        (["RANK": "x", "WORLD_SIZE": "2"], "RANK=x"),
        (["RANK": "2", "WORLD_SIZE": "2"], "RANK=2 is not below WORLD_SIZE=2"),
        (["WORLD_SIZE": "2"], "RANK is not"),
        (["RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "h"], "MASTER_PORT is not"),
        (["RANK": "0", "WORLD_SIZE": "2"], "CHORUS_RENDEZVOUS"),
        ([:], "no launcher"),
    ])
    func malformedEnvironmentsAreNamed(_ env: [String: String], _ expected: String) {
        do {
            _ = try LaunchEnvironment(environment: env)
            Issue.record("accepted \(env)")
        } catch {
            #expect("\(error)".contains(expected), "\(error)")
        }
    }

    @Test(arguments: [
        ("CHORUS_TIMEOUT", "soon"), ("CHORUS_TIMEOUT", "-1"), ("CHORUS_TRANSPORT", "carrier-pigeon"),
        ("CHORUS_DEBUG", "LOUD"), ("CHORUS_ALGO", "allreduce:nonsense^"),
        ("CHORUS_SOCKET_NSTREAMS", "0"), ("CHORUS_SOCKET_NSTREAMS", "17"), ("CHORUS_SOCKET_NSTREAMS", "many"),
        ("CHORUS_IB_GID_INDEX", "256"), ("CHORUS_IB_GID_INDEX", "-1"), ("CHORUS_IB_GID_INDEX", "roce"),
        ("CHORUS_SHM_RING_WRITES", "fast"), ("CHORUS_SHM_RING_WRITES", "1"),
    ])
    func malformedKnobsAreNamed(_ name: String, _ value: String) {
        do {
            _ = try ChorusConfiguration(environment: [name: value])
            Issue.record("accepted \(name)=\(value)")
        } catch {
            #expect("\(error)".contains(name), "\(error)")
        }
    }
}
