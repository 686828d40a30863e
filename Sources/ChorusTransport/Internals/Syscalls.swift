#if canImport(Glibc)
import Glibc
#endif

// Every socket system call Chorus makes goes through this file: EINTR is retried, sends never
// raise SIGPIPE (a library loaded into Python cannot count on SIGPIPE being ignored), and
// failures come back as `TransportError` naming the call and errno.

package enum Syscall {
    /// Runs `body` until it does not fail with EINTR.
    @inline(__always)
    package static func retrying<T: BinaryInteger>(_ body: () -> T) -> T {
        while true {
            let r = body()
            if r == -1 && errno == EINTR { continue }
            return r
        }
    }

    package static func error(_ kind: TransportError.Kind, _ call: String, peer: Int? = nil, _ message: String) -> TransportError {
        let code = errno
        let reason = String(cString: strerror(code))
        return TransportError(kind, peer: peer, syscall: call, code: code, "\(message): \(reason)")
    }
}

/// A resolved socket address.
package struct SocketAddress: Sendable, CustomStringConvertible {
    package var storage: sockaddr_storage
    package var length: socklen_t
    package var family: Int32 { Int32(storage.ss_family) }

    package init(storage: sockaddr_storage, length: socklen_t) {
        self.storage = storage
        self.length = length
    }

    /// Resolves `host` (a name, IPv4 or IPv6 literal, with or without brackets) and `port`.
    package static func resolve(host: String, port: Int) throws -> [SocketAddress] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var list: UnsafeMutablePointer<addrinfo>?
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        let status = getaddrinfo(bare, String(port), &hints, &list)
        guard status == 0, let first = list else {
            throw TransportError(.connect, "cannot resolve '\(host)': \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(first) }
        var result: [SocketAddress] = []
        var p: UnsafeMutablePointer<addrinfo>? = first
        while let entry = p {
            var storage = sockaddr_storage()
            withUnsafeMutableBytes(of: &storage) { dst in
                dst.copyMemory(from: UnsafeRawBufferPointer(start: entry.pointee.ai_addr, count: Int(entry.pointee.ai_addrlen)))
            }
            result.append(SocketAddress(storage: storage, length: entry.pointee.ai_addrlen))
            p = entry.pointee.ai_next
        }
        return result
    }

    package var port: Int {
        var s = storage
        return withUnsafePointer(to: &s) { p in
            p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
        }
    }

    package var host: String {
        var s = storage
        var buffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        let length = self.length
        let ok = withUnsafePointer(to: &s) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getnameinfo($0, length, &buffer, socklen_t(buffer.count), nil, 0, NI_NUMERICHOST)
            }
        }
        return ok == 0 ? String(decoding: buffer.prefix { $0 != 0 }.map(UInt8.init), as: UTF8.self) : "?"
    }

    package var description: String { family == AF_INET6 ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// A stream socket file descriptor that closes itself.
package final class StreamSocket: @unchecked Sendable {
    package let fd: Int32
    package let peerDescription: String

    package init(fd: Int32, peer: String) {
        self.fd = fd
        self.peerDescription = peer
    }

    deinit { close(fd) }

    /// Connects to `address`, failing after `timeout`.
    package static func connect(to address: SocketAddress, timeout: Duration) throws -> StreamSocket {
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw Syscall.error(.connect, "socket", "cannot create a socket") }
        let sock = StreamSocket(fd: fd, peer: address.description)
        var storage = address.storage
        let r = withUnsafePointer(to: &storage) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, address.length) }
        }
        if r != 0 {
            guard errno == EINPROGRESS else { throw Syscall.error(.connect, "connect", "cannot connect to \(address)") }
            var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            let ms = Int32(max(1, min(Double(Int32.max), timeout.inSeconds * 1000)))
            let ready = Syscall.retrying { poll(&pfd, 1, ms) }
            guard ready == 1 else {
                if ready == 0 { throw TransportError(.connect, "cannot connect to \(address): no answer within \(timeout.chorusDescription)") }
                throw Syscall.error(.connect, "poll", "cannot connect to \(address)")
            }
            var soError: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &len)
            if soError != 0 {
                errno = soError
                throw Syscall.error(.connect, "connect", "cannot connect to \(address)")
            }
        }
        try sock.setBlocking(true)
        sock.setNoDelay()
        return sock
    }

    /// A listening socket on `host` (nil: every address) and `port` (0: any free port).
    package static func listen(host: String?, port: Int, backlog: Int32 = 128) throws -> StreamSocket {
        let addresses = try SocketAddress.resolve(host: host ?? "0.0.0.0", port: port)
        var lastError: TransportError?
        for address in addresses {
            let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { lastError = Syscall.error(.connect, "socket", "cannot create a socket"); continue }
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            var storage = address.storage
            let bound = withUnsafePointer(to: &storage) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, address.length) }
            }
            guard bound == 0 else {
                lastError = Syscall.error(.connect, "bind", "cannot listen on \(address)")
                close(fd)
                continue
            }
            guard Glibc.listen(fd, backlog) == 0 else {
                lastError = Syscall.error(.connect, "listen", "cannot listen on \(address)")
                close(fd)
                continue
            }
            return StreamSocket(fd: fd, peer: address.description)
        }
        throw lastError ?? TransportError(.connect, "cannot listen on \(host ?? "*"):\(port)")
    }

    /// The local address's host (the interface this socket uses).
    package var localHost: String {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) { p in p.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return SocketAddress(storage: storage, length: len).host
    }

    /// The local port (after listening on port 0).
    package var localPort: Int {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) { p in p.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return SocketAddress(storage: storage, length: len).port
    }

    /// Waits up to `timeout` for a connection; `nil` on timeout.
    package func accept(timeout: Duration) throws -> StreamSocket? {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ms = Int32(max(0, min(Double(Int32.max), timeout.inSeconds * 1000)))
        let ready = Syscall.retrying { poll(&pfd, 1, ms) }
        if ready == 0 { return nil }
        guard ready == 1 else { throw Syscall.error(.connect, "poll", "cannot accept") }
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let client = withUnsafeMutablePointer(to: &storage) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { a in Syscall.retrying { Glibc.accept(fd, a, &len) } }
        }
        guard client >= 0 else {
            if errno == EAGAIN || errno == ECONNABORTED { return nil }
            throw Syscall.error(.connect, "accept", "cannot accept")
        }
        _ = fcntl(client, F_SETFD, FD_CLOEXEC)
        let sock = StreamSocket(fd: client, peer: SocketAddress(storage: storage, length: len).description)
        sock.setNoDelay()
        return sock
    }

    package func setNoDelay() {
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    package func setBlocking(_ blocking: Bool) throws {
        let flags = fcntl(fd, F_GETFL)
        guard fcntl(fd, F_SETFL, blocking ? flags & ~O_NONBLOCK : flags | O_NONBLOCK) == 0 else {
            throw Syscall.error(.connect, "fcntl", "cannot set socket mode")
        }
    }

    /// Sends every byte (blocking), without SIGPIPE.
    package func sendAll(_ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            let n = Syscall.retrying { send(fd, bytes.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw Syscall.error(.send, "send", "cannot send to \(peerDescription)") }
            offset += n
        }
    }

    package func sendAll(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try sendAll($0) } }

    /// Receives exactly `count` bytes, waiting at most `timeout` for each piece.
    /// - Throws: on a closed connection (`receive`, "closed the connection"), a timeout, or an error.
    package func receiveExactly(_ count: Int, timeout: Duration) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var offset = 0
        while offset < count {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ms = Int32(max(0, min(Double(Int32.max), timeout.inSeconds * 1000)))
            let ready = Syscall.retrying { poll(&pfd, 1, ms) }
            if ready == 0 { throw TransportError(.receive, "\(peerDescription) sent nothing for \(timeout.chorusDescription)") }
            guard ready == 1 else { throw Syscall.error(.receive, "poll", "cannot receive from \(peerDescription)") }
            let n = out.withUnsafeMutableBytes { b in Syscall.retrying { recv(fd, b.baseAddress! + offset, count - offset, 0) } }
            if n == 0 { throw TransportError(.receive, "\(peerDescription) closed the connection") }
            guard n > 0 else { throw Syscall.error(.receive, "recv", "cannot receive from \(peerDescription)") }
            offset += n
        }
        return out
    }
}
