extension Array {
    /// Empties the array and keeps its storage. The runtime's hot paths clear short lists on
    /// every call (a call's completions, its executions, a peer's queued messages), and
    /// `removeAll(keepingCapacity:)` goes through the generic range replacement, 60-100
    /// instructions even for one element; popping a few elements costs a fraction of that.
    @inlinable
    public mutating func removeAllKeepingCapacity() {
        if count <= 8 {
            while !isEmpty { removeLast() }
        } else {
            removeAll(keepingCapacity: true)
        }
    }
}
