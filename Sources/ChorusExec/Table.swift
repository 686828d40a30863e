/// A fixed list of plain values (integers, flags, enums without payloads) in memory that its
/// owner allocates once and frees in its `deinit`. Reading an element costs no reference
/// counting: an array read through a class reference is retained and released around the read,
/// which on the executor's paths (every post and completion) added up to dozens of atomic
/// operations per call. Reads are bounds-checked like an array's.
@usableFromInline
struct Table<Element: BitwiseCopyable>: RandomAccessCollection {
    @usableFromInline let base: UnsafeMutablePointer<Element>
    @usableFromInline let endIndex: Int

    /// A copy of `values`; the owner must call `deallocate()` once.
    init(_ values: [Element]) {
        let base = UnsafeMutablePointer<Element>.allocate(capacity: Swift.max(values.count, 1))
        values.withUnsafeBufferPointer { if let p = $0.baseAddress { base.initialize(from: p, count: $0.count) } }
        self.base = base
        endIndex = values.count
    }

    @inlinable var startIndex: Int { 0 }

    @inlinable subscript(i: Int) -> Element {
        precondition(UInt(bitPattern: i) < UInt(bitPattern: endIndex), "table index out of range")
        return base[i]
    }

    func deallocate() { base.deallocate() }
}
