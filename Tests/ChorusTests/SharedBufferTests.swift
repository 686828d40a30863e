import Chorus
import Foundation
import Testing

/// `SharedBuffer`: allocation, its name in /dev/shm and its removal, and every refusal.
@Suite(.serialized) struct SharedBufferTests {
    /// This process's shared-buffer objects in /dev/shm.
    func ownBufferNames() throws -> [String] {
        let prefix = "chorus-\(getuid())-\(getpid())-buffer-"
        return try FileManager.default.contentsOfDirectory(atPath: "/dev/shm").filter { $0.hasPrefix(prefix) }
    }

    @Test func aBufferIsZeroedWritableNamedAndRemovedOnFree() throws {
        let before = try ownBufferNames()
        let buffer = try SharedBuffer.allocate(byteCount: 3 * 4096 + 5)
        #expect(buffer.count == 3 * 4096 + 5)
        #expect(UInt(bitPattern: buffer.baseAddress!) % 4096 == 0)
        #expect(buffer.allSatisfy { $0 == 0 })
        buffer[buffer.count - 1] = 0x5A
        #expect(buffer[buffer.count - 1] == 0x5A)
        #expect(try ownBufferNames().count == before.count + 1)
        #expect(SharedBuffer.free(buffer))
        #expect(try ownBufferNames() == before)
        #expect(!SharedBuffer.free(buffer), "freeing twice is refused")
    }

    @Test func sizesThatAreNotPositiveAreRefused() {
        for size in [0, -1, Int.min] {
            #expect {
                _ = try SharedBuffer.allocate(byteCount: size)
            } throws: { error in
                guard case ChorusError.invalidArgument(let message) = error else { return false }
                return message.contains("\(size)") && message.contains("positive")
            }
        }
    }

    @Test func moreThanTheHostHasFailsAtOnceNamingIt() throws {
        // 1 PiB: more than the host's available memory; refused before anything is reserved,
        // not with SIGBUS or the kernel's OOM killer later.
        let before = try ownBufferNames()
        #expect {
            _ = try SharedBuffer.allocate(byteCount: 1 << 50)
        } throws: { error in
            guard case ChorusError.transport(let message) = error else { return false }
            return message.contains("\(1 << 50) bytes") && message.contains("MemAvailable")
        }
        #expect(try ownBufferNames() == before, "the refused object's name is removed")
    }

    @Test func typedBuffersCarryACollective() throws {
        // One rank: the all-reduce is the identity, run from and into shared buffers.
        let comm = try Communicator.inProcess(size: 1)[0]
        let input = try SharedBuffer.allocate(Float.self, count: 1000)
        let output = try SharedBuffer.allocate(Float.self, count: 1000)
        defer {
            SharedBuffer.free(input)
            SharedBuffer.free(output)
        }
        for i in 0..<1000 { input[i] = Float(i) }
        try comm.allReduce(input.baseAddress, output.baseAddress, count: 1000, dataType: .float32, op: .sum)
        #expect(Array(output) == Array(input))
        #expect {
            _ = try SharedBuffer.allocate(Double.self, count: Int.max / 4)
        } throws: { error in
            guard case ChorusError.invalidArgument(let message) = error else { return false }
            return message.contains("count")
        }
    }

    @Test func memoryThatIsNotASharedBufferIsNotFreed() {
        let plain = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 64)
        defer { plain.deallocate() }
        #expect(!SharedBuffer.free(plain))
    }
}
