import CChorusKernels
@testable import ChorusTransportSHM
import Testing

/// Where a large fragment's payload lies in its ring record, and the copy that writes a fragment
/// and a send's carried copy in one pass (`CChorusKernels_copy_twice`).
struct RingLayoutTests {
    @Test func aLargeFragmentsPayloadLinesUpWithItsDestination() {
        for address in 0..<256 {
            let start = Ring.payloadStart(matching: UnsafeRawPointer(bitPattern: 4096 + address)!)
            #expect(Ring.payloadStarts.contains(start))
            // Records start on cache lines: the payload sits at the destination's offset in one.
            #expect(start % 64 == address % 64, "address \(address): payload at \(start)")
        }
        // The largest fragment still fits a quarter of the ring wherever its payload starts.
        let ring = SharedSegment.ringBytes(ranks: 2)
        let fragment = (ring / 4 - Ring.payloadStarts.upperBound) & ~63
        #expect(Ring.recordBytes(payload: fragment, at: Ring.payloadStarts.upperBound) <= ring / 4)
        #expect(Ring.recordBytes(payload: 8) == 64)
    }

    @Test(arguments: [0, 1, 100, (64 << 10) - 1, (64 << 10) + 37, (1 << 20) + 5])
    func copyingTwiceWritesBothDestinationsAndNothingElse(count: Int) {
        let guardBytes = 64
        let source = (0..<count + 64).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        for firstStreaming in [Int32(0), 1] {
            for (firstShift, secondShift) in [(0, 0), (16, 16), (0, 16), (8, 40), (33, 1)] {
                var first = [UInt8](repeating: 0xEE, count: count + 2 * guardBytes + 64)
                var second = first
                source.withUnsafeBytes { src in
                    first.withUnsafeMutableBytes { a in
                        second.withUnsafeMutableBytes { b in
                            CChorusKernels_copy_twice(a.baseAddress! + guardBytes + firstShift, b.baseAddress! + guardBytes + secondShift,
                                                      src.baseAddress! + 3, count, firstStreaming)
                        }
                    }
                }
                let expected = Array(source[3..<3 + count])
                for (buffer, shift) in [(first, firstShift), (second, secondShift)] {
                    #expect(Array(buffer[guardBytes + shift..<guardBytes + shift + count]) == expected,
                            "\(count) bytes, shifts \(firstShift)/\(secondShift), first streaming \(firstStreaming)")
                    #expect(buffer[..<(guardBytes + shift)].allSatisfy { $0 == 0xEE })
                    #expect(buffer[(guardBytes + shift + count)...].allSatisfy { $0 == 0xEE })
                }
            }
        }
    }
}
