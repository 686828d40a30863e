import ChorusTransport
import ChorusTransportSHM

/// Memory for collective buffers that the other ranks on this host read in place: the role of
/// `ncclMemAlloc` with buffer registration in NCCL, or `MPI_Win_allocate_shared` in MPI.
///
/// Over shared memory, a message of at least 128 KiB sent from such a buffer moves with one
/// copy (the receiver copies or reduces straight out of it) instead of two through the rings.
/// Any collective may use these buffers as inputs, outputs or both; only the sending side
/// matters. Over other transports they are ordinary memory.
///
/// ```swift
/// let gradients = try SharedBuffer.allocate(Float.self, count: n)
/// defer { SharedBuffer.free(gradients) }
/// try comm.allReduce(gradients.baseAddress, gradients.baseAddress, count: n, dataType: .float32, op: .sum)
/// ```
///
/// A buffer is process-wide: it outlives communicators and can be used with any of them. Do not
/// free it while a collective that uses it runs. Peers that read a buffer keep its pages mapped
/// until they next map a buffer (they then drop the mappings of freed ones), evict it (16 per
/// peer, least recently used first) or close, so a freed buffer's memory returns a little after
/// `free`.
public enum SharedBuffer {
    /// Allocates `byteCount` bytes, page-aligned and zeroed, reserved up front (a full
    /// `/dev/shm`, or more than the host's available memory, fails here).
    /// - Throws: `ChorusError.invalidArgument` for a size that is not positive;
    ///   `ChorusError.transport` naming the shared-memory object the system refused.
    public static func allocate(byteCount: Int) throws(ChorusError) -> UnsafeMutableRawBufferPointer {
        guard byteCount > 0 else {
            throw .invalidArgument("SharedBuffer.allocate(byteCount: \(byteCount)): the size must be positive")
        }
        do {
            return try SharedBuffers.allocate(byteCount: byteCount)
        } catch let error as TransportError {
            throw .transport(error.description)
        } catch {
            throw .transport("\(error)")
        }
    }

    /// Allocates room for `count` elements of `type`, zeroed (pass `baseAddress` and `count` to
    /// the raw-buffer calls with `Element.dataType`).
    /// - Throws: `ChorusError.invalidArgument` for a count that is not positive or too large.
    public static func allocate<Element: ChorusElement>(_ type: Element.Type, count: Int) throws(ChorusError) -> UnsafeMutableBufferPointer<Element> {
        let (bytes, overflow) = count.multipliedReportingOverflow(by: MemoryLayout<Element>.stride)
        guard count > 0, !overflow else {
            throw .invalidArgument("SharedBuffer.allocate(\(Element.self).self, count: \(count)): the count must be positive and its bytes fit an Int")
        }
        return try allocate(byteCount: bytes).bindMemory(to: Element.self)
    }

    /// Frees a typed buffer `allocate(_:count:)` returned.
    @discardableResult
    public static func free<Element>(_ buffer: UnsafeMutableBufferPointer<Element>) -> Bool {
        guard let base = buffer.baseAddress else { return false }
        return SharedBuffers.free(UnsafeMutableRawPointer(base))
    }

    /// Frees a buffer `allocate` returned.
    /// - Returns: false, freeing nothing, when `buffer` does not start a live shared buffer.
    @discardableResult
    public static func free(_ buffer: UnsafeMutableRawBufferPointer) -> Bool {
        guard let base = buffer.baseAddress else { return false }
        return SharedBuffers.free(base)
    }

    /// Frees the buffer that starts at `base`.
    @discardableResult
    public static func free(_ base: UnsafeMutableRawPointer) -> Bool { SharedBuffers.free(base) }
}
