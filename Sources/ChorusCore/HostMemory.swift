#if canImport(Glibc)
import Glibc
#endif

/// The host's memory, as the kernel reports it.
public enum HostMemory {
    /// `MemAvailable` from /proc/meminfo, in bytes: what can be allocated without swapping or
    /// the kernel killing a process. `nil` where it cannot be read.
    public static func available() -> Int? {
        guard let f = fopen("/proc/meminfo", "r") else { return nil }
        defer { fclose(f) }
        var line = [CChar](repeating: 0, count: 256)
        while fgets(&line, Int32(line.count), f) != nil {
            let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            guard text.hasPrefix("MemAvailable:") else { continue }
            return Int(text.dropFirst("MemAvailable:".count).filter { $0.isNumber }).map { $0 * 1024 }
        }
        return nil
    }
}
