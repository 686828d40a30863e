import ChorusTransport

/// The rendezvous store's wire format.
///
/// A message is a frame: a 32-bit little-endian length, then that many bytes of payload. A
/// payload is a command byte and fields, each a 32-bit little-endian length and its bytes.
///
/// | command | fields | reply |
/// |---|---|---|
/// | `hello` | token, rank, size, protocol version | `ok` + job nonce, or `refused` + reason |
/// | `set` | key, value | `ok` |
/// | `get` | key | `found` + value, or `missing` |
/// | `done` | | `ok` |
///
/// A connection must say `hello` with the job's token first; anything else, a wrong token, a
/// rank out of range or taken, or a frame over `maximumFrame` closes it.
enum RendezvousWire {
    static let version = "chorus-rendezvous-1"
    static let maximumFrame = 1 << 20

    enum Command: UInt8 {
        case hello = 1, set, get, done
        case ok = 0x80, refused, found, missing
    }

    static func frame(_ command: Command, _ fields: [[UInt8]]) -> [UInt8] {
        var payload: [UInt8] = [command.rawValue]
        for f in fields {
            payload += littleEndian(UInt32(f.count))
            payload += f
        }
        return littleEndian(UInt32(payload.count)) + payload
    }

    static func frame(_ command: Command, strings: [String]) -> [UInt8] {
        frame(command, strings.map { Array($0.utf8) })
    }

    static func littleEndian(_ v: UInt32) -> [UInt8] {
        [UInt8(v & 0xFF), UInt8((v >> 8) & 0xFF), UInt8((v >> 16) & 0xFF), UInt8(v >> 24)]
    }

    static func readUInt32(_ b: ArraySlice<UInt8>) -> UInt32 {
        let i = b.startIndex
        return UInt32(b[i]) | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2]) << 16 | UInt32(b[i + 3]) << 24
    }

    /// Reads one frame: its command and fields.
    /// - Throws: `TransportError` when the connection fails or the frame is malformed.
    static func read(_ socket: StreamSocket, timeout: Duration) throws -> (Command, [[UInt8]]) {
        let header = try socket.receiveExactly(4, timeout: timeout)
        let length = Int(readUInt32(header[...]))
        guard length >= 1, length <= maximumFrame else {
            throw TransportError(.protocolViolation, "\(socket.peerDescription) sent a frame of \(length) bytes; this is not a Chorus rendezvous peer")
        }
        let payload = try socket.receiveExactly(length, timeout: timeout)
        guard let command = Command(rawValue: payload[0]) else {
            throw TransportError(.protocolViolation, "\(socket.peerDescription) sent unknown command \(payload[0])")
        }
        var fields: [[UInt8]] = []
        var i = 1
        while i < payload.count {
            guard i + 4 <= payload.count else { throw TransportError(.protocolViolation, "\(socket.peerDescription) sent a truncated frame") }
            let n = Int(readUInt32(payload[i..<(i + 4)]))
            i += 4
            guard i + n <= payload.count else { throw TransportError(.protocolViolation, "\(socket.peerDescription) sent a truncated frame") }
            fields.append(Array(payload[i..<(i + n)]))
            i += n
        }
        return (command, fields)
    }
}

extension Array where Element == UInt8 {
    var utf8String: String { String(decoding: self, as: UTF8.self) }
}
