import ChorusCore
#if canImport(Glibc)
import Glibc
#endif

/// A rendezvous for a new job whose rank 0 runs on this host: what NCCL's `ncclGetUniqueId`
/// gives, as an address and a token. Rank 0 makes it and hands it to the other ranks (over
/// MPI, a file, the launcher); everyone then joins with `Communicator(rank:size:rendezvous:jobToken:)`.
public struct NewRendezvous: Sendable, Hashable {
    /// `host:port` (`[v6]:port`) for the store rank 0 will host.
    public var address: String
    /// A random secret for the job.
    public var jobToken: String

    /// Picks the address peers will reach (the interface `CHORUS_SOCKET_IFNAME` names, else the
    /// host of `CHORUS_RENDEZVOUS`, else this host's first non-loopback IPv4 address, else
    /// 127.0.0.1) with a port free at this moment, and a random token.
    public static func make(environment: [String: String] = ChorusConfiguration.processEnvironment()) throws(ChorusError) -> NewRendezvous {
        let configuration = try ChorusConfiguration(environment: environment)
        var host = try Communicator.interfaceAddress(configuration.socketInterface)
        if host == nil, let given = configuration.rendezvous { host = try RendezvousClient.split(given).host }
        let chosen = host ?? firstExternalIPv4() ?? "127.0.0.1"
        let port = try freePort(host: chosen)
        let address = chosen.contains(":") ? "[\(chosen)]:\(port)" : "\(chosen):\(port)"
        var random = SystemRandomNumberGenerator()
        let token = (0..<4).map { _ in String(random.next() as UInt32, radix: 16) }.joined(separator: "-")
        return NewRendezvous(address: address, jobToken: "chorus-\(token)")
    }

    /// This host's first IPv4 address outside 127/8 on an interface that is up.
    static func firstExternalIPv4() -> String? {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return nil }
        defer { freeifaddrs(first) }
        var p: UnsafeMutablePointer<ifaddrs>? = first
        while let entry = p {
            defer { p = entry.pointee.ifa_next }
            guard let address = entry.pointee.ifa_addr, Int32(address.pointee.sa_family) == AF_INET,
                  entry.pointee.ifa_flags & UInt32(IFF_UP) != 0, entry.pointee.ifa_flags & UInt32(IFF_LOOPBACK) == 0 else { continue }
            var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            if getnameinfo(address, socklen_t(MemoryLayout<sockaddr_in>.size), &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST) == 0 {
                return String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            }
        }
        return nil
    }

    /// A TCP port nothing listens on at this moment (bound, read, released).
    static func freePort(host: String) throws(ChorusError) -> Int {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, "0", &hints, &result) == 0, let info = result else {
            throw .configuration("cannot use '\(host)' as the rendezvous host: not a numeric address of this machine")
        }
        defer { freeaddrinfo(info) }
        let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype, 0)
        guard fd >= 0 else { throw .transport("cannot open a socket to find a free port: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else {
            throw .configuration("cannot bind \(host): \(String(cString: strerror(errno))) (is it an address of this host?)")
        }
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafeMutablePointer(to: &storage) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) == 0 }
        }
        guard ok else { throw .transport("cannot read the bound port: \(String(cString: strerror(errno)))") }
        return withUnsafePointer(to: &storage) { p in
            if Int32(p.pointee.ss_family) == AF_INET6 {
                return p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin6_port)) }
            }
            return p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
        }
    }
}
