@testable import Chorus
import ChorusTopology
import Testing

/// The selector's model of a job's hosts follows the network the transport uses between them.
@Suite struct HostModelTests {
    @Test(arguments: [("tcp", LinkKind.ethernet), ("ofi:tcp;ofi_rxm", .ethernet), ("ofi:efa", .efa), ("verbs", .infiniband),
                      ("ofi:verbs;ofi_rxm", .infiniband)])
    func theLinkBetweenHostsIsTheTransportsNetwork(network: String, kind: LinkKind) throws {
        #expect(HostModel.networkLink(for: network).kind == kind)
        for hosts in [[0, 0, 1, 1], [0, 1, 1]] {
            let topology = try HostModel.topology(hosts: hosts, network: HostModel.networkLink(for: network))
            #expect(topology.links.contains { $0.kind == kind })
            if kind != .ethernet { #expect(!topology.links.contains { $0.kind == .ethernet }) }
        }
    }
}
