#if canImport(Glibc)
import Glibc
#endif

/// A large zero-filled buffer straight from `mmap`, reserved without committing memory (pages
/// cost memory only once touched, so a buffer sized for the worst case may be mostly unused).
///
/// The symbolic checker's slots live here, and its pool of bitsets, sized for every slot
/// (`ranks × chunks × ranks` bits) but touched only by slots whose sets are not runs. Fresh
/// anonymous mappings are already zero, so the memory is not cleared twice. (Huge pages were tried: on the development VM first touch of fresh memory runs at
/// 0.5 GB/s with 4 KiB pages and 0.3 GB/s with transparent huge pages, so none are asked for.)
final class ZeroedMemory<Element> {
    let buffer: UnsafeMutableBufferPointer<Element>
    private let bytes: Int

    init(count: Int) {
        bytes = max(count * MemoryLayout<Element>.stride, 1)
        let address = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let address, address != MAP_FAILED else {
            // Out of address space: this is a programmer-sized request, not user input.
            preconditionFailure("mmap of \(bytes) bytes failed (errno \(errno))")
        }
        buffer = UnsafeMutableBufferPointer(start: address.bindMemory(to: Element.self, capacity: count), count: count)
    }

    deinit { munmap(UnsafeMutableRawPointer(buffer.baseAddress), bytes) }
}

/// A fixed-size buffer owned by a class, for flat per-op tables that several threads fill at
/// disjoint indices (a Swift array cannot be written from several threads).
final class FlatArray<Element> {
    let buffer: UnsafeMutableBufferPointer<Element>

    init(repeating value: Element, count: Int) {
        buffer = .allocate(capacity: count)
        buffer.initialize(repeating: value)
    }

    deinit {
        buffer.deinitialize()
        buffer.deallocate()
    }

    @inline(__always) subscript(_ i: Int) -> Element {
        get { buffer[i] }
        set { buffer[i] = newValue }
    }
}
