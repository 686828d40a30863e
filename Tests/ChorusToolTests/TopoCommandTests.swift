import Foundation
import Testing

@Suite("chorus topo", .serialized)
struct TopoCommandTests {
    @Test func validateAcceptsEveryShippedFile() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: repositoryRoot + "/Topologies")
            .filter { $0.hasSuffix(".yaml") }.sorted().map { "Topologies/" + $0 }
        #expect(files.count >= 13)
        let result = try runChorus(["topo", "validate"] + files)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.split(separator: "\n").count == files.count)
    }

    @Test func validateReportsEveryProblemOnePerLineAndExitsOne() throws {
        let dir = NSTemporaryDirectory() + "chorus-tool-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let bad = dir + "/bad.yaml"
        try """
            topology: bad
            nodes:
              - { name: c, count: 4, kind: acelerator }
            links:
              - { ring: c, kind: neuronlink, bandwidth: 5, latency: 1us }
            ranks: c
            """.write(toFile: bad, atomically: true, encoding: .utf8)
        let empty = dir + "/empty.yaml"
        try "# only a comment\n".write(toFile: empty, atomically: true, encoding: .utf8)
        let result = try runChorus(["topo", "validate", "Topologies/aws-trn2.48xlarge.yaml", bad, empty])
        #expect(result.status == 1)
        #expect(result.stdout.contains("aws-trn2.48xlarge.yaml: ok"))
        #expect(result.stderr.split(separator: "\n").map(String.init) == [
            "\(bad):3:32: node 'c': 'kind' has unknown value 'acelerator' (did you mean 'accelerator'?); expected one of accelerator, cpu, nic, switch",
            "\(bad):5:45: ring over 'c': 'bandwidth' needs a unit, found '5'; write e.g. 5Gbps (bits) or 5GB/s (bytes)",
            "\(empty):1:1: the file is empty; expected a topology mapping with at least a 'topology' name",
        ])
    }

    @Test func showPrintsTheSummaryAndJSONWithRanks() throws {
        let text = try runChorus(["topo", "show", "aws-trn2.48xlarge"])
        #expect(text.status == 0)
        #expect(text.stdout.contains("16 on 1 host"))
        #expect(text.stdout.contains("bisection   2.05 TB/s per direction over neuronlink (closed form: 4x4 torus)"))
        let json = try runChorus(["topo", "show", "Topologies/nvidia-dgx-h100.yaml", "--json"])
        #expect(json.status == 0)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(object["ranks"] as? Int == 8)
        #expect(object["topology"] as? String == "nvidia-dgx-h100")
    }

    @Test func parametersComeFromTheCommandLine() throws {
        let json = try runChorus(["topo", "show", "localhost", "--param", "ranks=6", "--json"])
        #expect(json.status == 0)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(object["ranks"] as? Int == 6)
        let unknown = try runChorus(["topo", "show", "localhost", "--param", "hosts=6"])
        #expect(unknown.status == 1)
        #expect(unknown.stderr.contains("parameter 'hosts' was given a value but this topology declares only ranks"))
    }

    @Test func badFlagsExitSixtyFour() throws {
        #expect(try runChorus(["topo", "show", "localhost", "--param", "ranks"]).status == 64)
        #expect(try runChorus(["topo", "show"]).status == 64)
        #expect(try runChorus(["topo", "show", "localhost", "--frobnicate"]).status == 64)
        #expect(try runChorus(["topo", "validate"]).status == 64)
    }

    @Test func aMissingFileIsABadInputNotACrash() throws {
        let result = try runChorus(["topo", "show", "no/such/file.yaml"])
        #expect(result.status == 1)
        #expect(result.stderr == "no/such/file.yaml:1:1: cannot read: no such file\n")
        let directory = try runChorus(["topo", "validate", "Topologies"])
        #expect(directory.status == 1)
    }

    @Test func dotWritesAGraph() throws {
        let result = try runChorus(["topo", "dot", "nvidia-dgx-h100"])
        #expect(result.status == 0)
        #expect(result.stdout.hasPrefix("graph \"nvidia-dgx-h100\" {"))
        #expect(result.stdout.components(separatedBy: " -- ").count - 1 == 40)
    }

    @Test func listNamesTheShippedTopologies() throws {
        let result = try runChorus(["topo", "list"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("aws-trn2-cluster-4096\n"))
    }
}
