import ChorusCore
import ChorusSchedule
import Foundation
import Testing

@Suite("Schedule JSON")
struct ScheduleJSONTests {
    @Test func roundTripsEveryFieldIncludingOperandsChannelsAndAfter() throws {
        var programs = [
            RankProgram([.send(to: 1, BufferSlice(.input, chunk: 1), channel: 1),
                         .recvReduce(from: 1, into: BufferSlice(.output, chunk: 0), with: BufferSlice(.input, chunk: 0), channel: 1),
                         .copy(from: BufferSlice(.output, chunk: 0), to: BufferSlice(.scratch, chunk: 0)),
                         .reduce(from: BufferSlice(.scratch, chunk: 0), into: BufferSlice(.output, ChunkList(chunks: [0]))).after([1])]),
            RankProgram([.recv(from: 0, into: BufferSlice(.output, ChunkList(chunks: [1, 0])), channel: 1)]),
        ]
        programs[1].ops.append(.recvReduce(from: 0, into: BufferSlice(.output, chunk: 1), channel: 1))
        programs[1].ops.removeLast()
        let schedule = Schedule(algorithm: "custom", collective: .allReduce, ranks: 2,
                                layout: .standard(.allReduce, ranks: 2, chunksPerBlock: 2, scratchBlocks: 1), channels: 2, programs: programs)
        let text = schedule.jsonText
        let back = try Schedule(json: text, file: "s.json")
        #expect(back.algorithm == "custom")
        #expect(back.collective == .allReduce)
        #expect(back.ranks == 2 && back.channels == 2 && back.layout == schedule.layout)
        #expect(back.allPrograms() == programs)
        // The text is JSON that other tools read.
        let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
        #expect(object?["collective"] as? String == "all-reduce")
        #expect((object?["programs"] as? [[Any]])?.count == 2)
    }

    @Test func aDeclaredSymmetryRoundTripsAndBadOnesAreNamed() throws {
        let programs = (0..<4).map { r in
            RankProgram([.send(to: (r + 1) % 4, BufferSlice(.input, chunk: 0)),
                         .recv(from: (r + 3) % 4, into: BufferSlice(.output, chunk: (r + 3) % 4))])
        }
        let schedule = Schedule(algorithm: "shift", collective: .allGather, ranks: 4,
                                layout: .standard(.allGather, ranks: 4, chunksPerBlock: 1), programs: programs)
            .declaring(RankSymmetry(.rotation, ranks: 4))
        let back = try Schedule(json: schedule.jsonText, file: "s.json")
        #expect(back.symmetry == RankSymmetry(.rotation, ranks: 4))
        #expect(try Schedule(json: schedule.declaring(nil).jsonText, file: "s.json").symmetry == nil)
        for (replacement, message) in [("\"stride\": 3", "the stride 3 does not divide the 4 ranks"),
                                       ("\"stride\": 0", "stride"),
                                       ("\"action\": \"turn\"", "unknown action 'turn'; expected rotation or xor")] {
            let key = replacement.hasPrefix("\"stride") ? "\"stride\": 1" : "\"action\": \"rotation\""
            let text = schedule.jsonText.replacingOccurrences(of: key, with: replacement)
            #expect(throws: (any Error).self) { try Schedule(json: text, file: "s.json") }
            do {
                _ = try Schedule(json: text, file: "s.json")
            } catch {
                #expect("\(error)".contains("s.json:") && "\(error)".contains(message), "\(error)")
            }
        }
    }

    @Test func badFilesReportLineAndColumn() {
        func problems(_ text: String) -> String {
            do {
                _ = try Schedule(json: text, file: "s.json")
                return "accepted"
            } catch {
                return "\(error)"
            }
        }
        #expect(problems("") == "s.json:1:1: the file is empty; expected a schedule object")
        #expect(problems("{\"collective\": \"all-reduce\", \"ranks\": 1, \"chunks-per-block\": 1, \"programs\": [[{\"op\": \"snd\", \"peer\": 0}]]}")
                == "s.json:1:86: rank 0, op 0: unknown op 'snd' (did you mean 'send'?); expected send, recv, copy or reduce")
        #expect(problems("{\"collective\": \"all-reduce\",\n \"ranks\": 2,\n \"chunks-per-block\": 1,\n \"programs\": [[]]}")
                == "s.json:4:14: 'programs' has 1 entries for 2 ranks; give one op list per rank")
        #expect(problems("{\"collective\": \"all-reduce\", \"ranks\": 1, \"chunks-per-block\": 1, \"programs\": [[{\"op\": \"send\", \"buffer\": \"inputs\", \"chunks\": [0]}]]}")
                == "s.json:1:79: rank 0, op 0: missing required key 'peer'\ns.json:1:104: rank 0, op 0: unknown buffer 'inputs'; expected input, output or scratch")
        #expect(problems("{\"collective\": \"allreduce\", \"ranks\": 1, \"chunks-per-block\": 1, \"programs\": [[]], \"extra\": 1}")
                == "s.json:1:82: unknown key 'extra'; expected one of schedule, algorithm, collective, ranks, root, chunks-per-block, scratch-blocks, channels, symmetry, programs")
    }

    @Test func aMissingFileIsReported() {
        #expect(throws: ScheduleError.self) { try Schedule.load(file: "/nonexistent/schedule.json") }
    }
}
