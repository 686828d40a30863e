import ChorusCore

extension Communicator {
    /// A color that joins no new communicator (NCCL's `NCCL_SPLIT_NOCOLOR`).
    public static let noColor = -1

    /// Splits the communicator, as `ncclCommSplit` and `MPI_Comm_split`: ranks passing the same
    /// `color` form a new communicator, ordered by `key` and then by their rank here. Every rank
    /// must call it (it is a collective over this communicator). A rank passing a negative color
    /// (`noColor`) joins none and gets `nil`.
    ///
    /// The new communicator shares this one's transport and progress thread: calls on either run
    /// in the order they are made, and a failure or abort in one stops both.
    public func split(color: Int, key: Int) throws(ChorusError) -> Communicator? {
        guard let color32 = Int32(exactly: color), let key32 = Int32(exactly: key) else {
            throw .invalidArgument("split on rank \(rank): color \(color) and key \(key) must fit in 32 bits")
        }
        let mine: [Int32] = [color32, key32]
        let all = try allGather(mine)
        let sequence = splits.withLock { n -> UInt64 in
            n += 1
            return n
        }
        guard color >= 0 else { return nil }
        var members: [(key: Int32, parentRank: Int)] = []
        for r in 0..<size where all[2 * r] == color32 {
            members.append((all[2 * r + 1], r))
        }
        members.sort { $0.key != $1.key ? $0.key < $1.key : $0.parentRank < $1.parentRank }
        let newRank = members.firstIndex { $0.parentRank == rank }!
        let world = members.map { worldRanks?[$0.parentRank] ?? $0.parentRank }
        return Communicator(engine: engine, rank: newRank, size: members.count,
                            worldRanks: world, hosts: members.map { hosts[$0.parentRank] },
                            id: Communicator.childID(parent: id, sequence: sequence, color: UInt64(color)))
    }

    /// A 24-bit id every member derives alike (FNV-1a of parent, split number and color; never 0).
    /// Two live communicators sharing a transport collide with probability about 2⁻²⁴ per pair.
    static func childID(parent: UInt64, sequence: UInt64, color: UInt64) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for word in [parent, sequence, color] {
            for shift in stride(from: 0, to: 64, by: 8) {
                h ^= (word >> UInt64(shift)) & 0xFF
                h &*= 0x100_0000_01b3
            }
        }
        let id = (h ^ (h >> 24) ^ (h >> 48)) & 0xFF_FFFF
        return id == 0 ? 2 : id
    }
}
