import ChorusCore
import ChorusSchedule
import Testing

/// A hand-written broken schedule and the exact failure the verifier must report.
struct Broken: CustomTestStringConvertible, Sendable {
    let name: String
    let schedule: Schedule
    let expected: String
    var testDescription: String { name }
}

/// A 2-rank all-reduce over 2 chunks, written out by hand (the ring): correct as given.
func twoRankRing(_ edit: (inout [RankProgram]) -> Void = { _ in }) -> Schedule {
    var programs = [
        RankProgram([
            .send(to: 1, BufferSlice(.input, chunk: 1)),
            .recvReduce(from: 1, into: BufferSlice(.output, chunk: 0), with: BufferSlice(.input, chunk: 0)),
            .send(to: 1, BufferSlice(.output, chunk: 0)),
            .recv(from: 1, into: BufferSlice(.output, chunk: 1)),
        ]),
        RankProgram([
            .send(to: 0, BufferSlice(.input, chunk: 0)),
            .recvReduce(from: 0, into: BufferSlice(.output, chunk: 1), with: BufferSlice(.input, chunk: 1)),
            .send(to: 0, BufferSlice(.output, chunk: 1)),
            .recv(from: 0, into: BufferSlice(.output, chunk: 0)),
        ]),
    ]
    edit(&programs)
    return Schedule(algorithm: "hand", collective: .allReduce, ranks: 2, layout: .standard(.allReduce, ranks: 2, chunksPerBlock: 2), programs: programs)
}

/// A 4-rank all-reduce of one chunk that pairs ranks two apart first (`r ^ 2`, then `r ^ 1`):
/// its partial sums, {0, 2} and {1, 3}, are not cyclic runs of ranks, so the verifier keeps
/// them as bitsets. Messages go through scratch, so the schedule is correct in place too.
/// `second` picks the second partner (`r ^ 2` again doubles the first sums).
func strideTwoPairs(second: (Int) -> Int = { $0 ^ 1 }, stages: Int = 2) -> Schedule {
    let programs = (0..<4).map { r -> RankProgram in
        let output = BufferSlice(.output, chunk: 0)
        var ops: [Op] = [.copy(from: BufferSlice(.input, chunk: 0), to: output),
                         .send(to: r ^ 2, output), .recv(from: r ^ 2, into: BufferSlice(.scratch, chunk: 0)),
                         .reduce(from: BufferSlice(.scratch, chunk: 0), into: output)]
        if stages == 2 {
            ops += [.copy(from: output, to: BufferSlice(.scratch, chunk: 1)),
                    .send(to: second(r), BufferSlice(.scratch, chunk: 1)), .recvReduce(from: second(r), into: output)]
        }
        return RankProgram(ops)
    }
    return Schedule(algorithm: "hand", collective: .allReduce, ranks: 4,
                    layout: .standard(.allReduce, ranks: 4, chunksPerBlock: 1, scratchBlocks: 2), programs: programs)
}

@Suite("The verifier rejects broken schedules")
struct VerifierRejectionTests {
    @Test func theHandWrittenRingIsCorrect() throws {
        try SymbolicChecker.verify(twoRankRing())
    }

    @Test func setsThatAreNotRunsOfRanksAreProvenToo() throws {
        try SymbolicChecker.verify(strideTwoPairs())
    }

    static let cases: [Broken] = [
        Broken(name: "peer out of range", schedule: twoRankRing { $0[0].ops[0] = .send(to: 5, BufferSlice(.input, chunk: 1)) },
               expected: "malformed schedule: rank 0, op 0 (send to rank 5 (input chunk 1)): peer 5 is not a rank (0...1)"),
        Broken(name: "message to itself", schedule: twoRankRing { $0[0].ops[0] = .send(to: 0, BufferSlice(.input, chunk: 1)) },
               expected: "malformed schedule: rank 0, op 0 (send to rank 0 (input chunk 1)): a rank cannot message itself; use a copy"),
        Broken(name: "chunk out of range", schedule: twoRankRing { $0[1].ops[0] = .send(to: 0, BufferSlice(.input, chunk: 2)) },
               expected: "malformed schedule: rank 1, op 0 (send to rank 0 (input chunk 2)): chunk 2 is outside the input buffer (chunks 0...1)"),
        Broken(name: "a send nobody receives", schedule: twoRankRing { $0[0].ops.append(.send(to: 1, BufferSlice(.output, chunk: 1))) },
               expected: "malformed schedule: rank 0 sends 3 messages to rank 1 but rank 1 receives 2 from rank 0"),
        Broken(name: "sizes that differ", schedule: twoRankRing { $0[1].ops[3] = .recv(from: 0, into: BufferSlice(.output, 0..<2)) },
               expected: "malformed schedule: rank 0, op 2 sends 1 chunk(s) to rank 1, whose matching op 3 receives 2 chunk(s) of different sizes"),
        Broken(name: "a deadlock", schedule: Schedule(algorithm: "hand", collective: .allReduce, ranks: 2, layout: .standard(.allReduce, ranks: 2, chunksPerBlock: 1), programs: [
            RankProgram([.recvReduce(from: 1, into: BufferSlice(.output, chunk: 0), with: BufferSlice(.input, chunk: 0)), .send(to: 1, BufferSlice(.output, chunk: 0))]),
            RankProgram([.recvReduce(from: 0, into: BufferSlice(.output, chunk: 0), with: BufferSlice(.input, chunk: 0)), .send(to: 0, BufferSlice(.output, chunk: 0))]),
        ]), expected: "the schedule can deadlock: no op can proceed; rank 0 at op 0 (recv from rank 1 (into output chunk 0, reducing with input chunk 0)): posted, but rank 1 has not posted the matching send; rank 1 is stuck at op 0 (recv from rank 0 (into output chunk 0, reducing with input chunk 0)); rank 1 at op 0 (recv from rank 0 (into output chunk 0, reducing with input chunk 0)): posted, but rank 0 has not posted the matching send; rank 0 is stuck at op 0 (recv from rank 1 (into output chunk 0, reducing with input chunk 0))"),
        Broken(name: "a missing contribution", schedule: twoRankRing { $0[0].ops[1] = .recv(from: 1, into: BufferSlice(.output, chunk: 0)) },
               expected: "the schedule is wrong: after every op, rank 0's output chunk 0 is missing the contribution of rank 0; it should hold input chunk 0 of every rank"),
        Broken(name: "a doubled contribution", schedule: twoRankRing { $0[0].ops.insert(.reduce(from: BufferSlice(.input, chunk: 0), into: BufferSlice(.output, chunk: 0)), at: 2) },
               expected: "the schedule is wrong: rank 0, op 2 (reduce input chunk 0 into output chunk 0): the contribution of rank 0 to chunk 0 would be counted twice in output chunk 0"),
        Broken(name: "chunks mixed up", schedule: twoRankRing { $0[0].ops[1] = .recvReduce(from: 1, into: BufferSlice(.output, chunk: 0), with: BufferSlice(.input, chunk: 1)) },
               expected: "malformed schedule: rank 0, op 1 (recv from rank 1 (into output chunk 0, reducing with input chunk 1)): the reduce operand's chunks differ in size from the destination's"),
        Broken(name: "reading what is not there", schedule: twoRankRing { $0[0].ops[0] = .send(to: 1, BufferSlice(.output, chunk: 1)) },
               expected: "the schedule is wrong: rank 0, op 0 (send to rank 1 (output chunk 1)): reads output chunk 1, which holds nothing yet"),
        Broken(name: "writing the caller's input", schedule: twoRankRing { $0[1].ops[3] = .recv(from: 0, into: BufferSlice(.input, chunk: 0)) },
               expected: "the schedule is wrong: rank 1, op 3 (recv from rank 0 (into input chunk 0)): writes input chunk 0 of the input buffer, which out of place belongs to the caller"),
        Broken(name: "after naming a later op", schedule: twoRankRing { $0[0].ops[1] = $0[0].ops[1].after([3]) },
               expected: "malformed schedule: rank 0, op 1 (recv from rank 1 (into output chunk 0, reducing with input chunk 0)): 'after' names op 3; it may name only earlier ops (0...0)"),
        Broken(name: "a buffer the schedule does not declare", schedule: twoRankRing { $0[0].ops[3] = .recv(from: 1, into: BufferSlice(.scratch, chunk: 0)) },
               expected: "malformed schedule: rank 0, op 3 (recv from rank 1 (into scratch chunk 0)): uses the scratch buffer, which this schedule does not have"),
        Broken(name: "a chunk named twice", schedule: twoRankRing { $0[0].ops[3] = .recv(from: 1, into: BufferSlice(.output, ChunkList(chunks: [1, 1]))) },
               expected: "malformed schedule: rank 0, op 3 (recv from rank 1 (into output chunks 1,1)): names output chunk 1 twice"),
        Broken(name: "correct only out of place", schedule: Schedule(algorithm: "hand", collective: .allReduce, ranks: 2, layout: .standard(.allReduce, ranks: 2, chunksPerBlock: 1, scratchBlocks: 2), programs: (0..<2).map { r in
            // Direct all-reduce that reads its own input after overwriting the output with rank 0's data.
            RankProgram([.send(to: 1 - r, .init(.input, chunk: 0)), .recv(from: 1 - r, into: .init(.scratch, chunk: 1 - r)),
                         .copy(from: r == 0 ? .init(.input, chunk: 0) : .init(.scratch, chunk: 0), to: .init(.output, chunk: 0)),
                         .reduce(from: r == 1 ? .init(.input, chunk: 0) : .init(.scratch, chunk: 1), into: .init(.output, chunk: 0))])
        }), expected: "the schedule is wrong: rank 1, op 3 (reduce input chunk 0 into output chunk 0) (in place): the contribution of rank 0 to chunk 0 would be counted twice in output chunk 0"),
        Broken(name: "the wrong postcondition", schedule: Schedule(algorithm: "hand", collective: .allGather, ranks: 2, layout: .standard(.allGather, ranks: 2, chunksPerBlock: 1), programs: (0..<2).map { r in
            // All-gather that forgets to place its own block.
            RankProgram([.send(to: 1 - r, .init(.input, chunk: 0)), .recv(from: 1 - r, into: .init(.output, chunk: 1 - r))])
        }), expected: "the schedule is wrong: after every op, rank 0's output chunk 0 holds nothing; it should hold input chunk 0 of rank 0"),
        Broken(name: "a self-inflicted in-place deadlock", schedule: Schedule(algorithm: "hand", collective: .allGather, ranks: 2, layout: .standard(.allGather, ranks: 2, chunksPerBlock: 1), programs: (0..<2).map { r in
            // Receiving into the block that, in place, is the input being sent.
            RankProgram([.send(to: 1 - r, .init(.input, chunk: 0)), .recv(from: 1 - r, into: .init(.output, chunk: r))])
        }), expected: "the schedule can deadlock: no op can proceed; rank 0 at op 0 (send to rank 1 (input chunk 0)): posted, but rank 1 has not posted the matching receive; rank 1 is stuck at op 0 (send to rank 0 (input chunk 0)); rank 1 at op 0 (send to rank 0 (input chunk 0)): posted, but rank 0 has not posted the matching receive; rank 0 is stuck at op 0 (send to rank 1 (input chunk 0))"),
        Broken(name: "a doubled contribution in a set that is not a run", schedule: strideTwoPairs(second: { $0 ^ 2 }),
               expected: "the schedule is wrong: rank 2, op 6 (recv from rank 0 (into output chunk 0, reducing)): the contributions of ranks 0, 2 to chunk 0 would be counted twice in output chunk 0"),
        Broken(name: "missing contributions from a set that is not a run", schedule: strideTwoPairs(stages: 1),
               expected: "the schedule is wrong: after every op, rank 0's output chunk 0 is missing the contributions of ranks 1, 3; it should hold input chunk 0 of every rank"),
    ]

    @Test(arguments: cases)
    func rejectsWithAPreciseMessage(_ c: Broken) {
        do {
            try SymbolicChecker.verify(c.schedule)
            Issue.record("\(c.name): the verifier accepted a broken schedule")
        } catch {
            #expect("\(error)" == c.expected)
        }
    }

    @Test func thereAreAtLeastTenKinds() { #expect(Self.cases.count >= 10) }
}
