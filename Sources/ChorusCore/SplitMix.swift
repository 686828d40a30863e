/// SplitMix64: a fixed, seedless 64-bit mixer (Steele, Lea and Flood, "Fast splittable
/// pseudorandom number generators", 2014). Chorus uses it wherever a choice must look random
/// yet be the same in every run: hashing a flow onto one of its equal-cost paths, signing link
/// loads, sampling ranks to check.
package enum SplitMix64 {
    /// The increment between states (the golden ratio in 64 bits).
    package static let increment: UInt64 = 0x9E37_79B9_7F4A_7C15

    /// The finalizer: scrambles every bit of `z` into every bit of the result.
    @inlinable
    package static func finalize(_ z: UInt64) -> UInt64 {
        var z = z
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// `a` and `b` mixed into one value (`b` stepped as a state index from `a`).
    @inlinable
    package static func mix(_ a: UInt64, _ b: UInt64) -> UInt64 { finalize(a &+ increment &* (b &+ 1)) }
}
