import Chorus
import ChorusCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

// The C API (`include/chorus.h`): `@_cdecl` entry points over the `Communicator` API. Every
// entry point catches every error and returns a code, with the message kept per thread
// (`chorusGetLastError`); nothing Swift can throw or trap on (a null pointer, an unknown enum
// value, a count beyond `Int`, a destroyed handle) reaches Swift code unchecked.

// MARK: - Result codes

/// `chorusResult_t`.
enum ResultCode: Int32 {
    case success = 0, invalidArgument, mismatch, timeout, aborted, transportError, rendezvousError, configurationError,
         unsupported, internalError

    init(_ error: ChorusError) {
        switch error {
        case .invalidArgument: self = .invalidArgument
        case .mismatch: self = .mismatch
        case .timeout: self = .timeout
        case .aborted: self = .aborted
        case .transport: self = .transportError
        case .rendezvous: self = .rendezvousError
        case .configuration: self = .configurationError
        case .unsupported: self = .unsupported
        }
    }

    /// Static C strings (string literals live for the whole process).
    static func name(_ code: Int32) -> StaticString {
        switch ResultCode(rawValue: code) {
        case .success: return "chorusSuccess: no error"
        case .invalidArgument: return "chorusInvalidArgument: an argument is wrong (null pointer, count, type, op, root, peer or handle)"
        case .mismatch: return "chorusMismatch: ranks made different calls"
        case .timeout: return "chorusTimeout: a peer made no progress in time"
        case .aborted: return "chorusAborted: the communicator was aborted"
        case .transportError: return "chorusTransportError: moving bytes failed"
        case .rendezvousError: return "chorusRendezvousError: joining the job failed"
        case .configurationError: return "chorusConfigurationError: an environment variable is unusable"
        case .unsupported: return "chorusUnsupported: not available in this build or on this machine"
        case .internalError: return "chorusInternalError: an internal failure"
        case nil: return "unknown chorus result code"
        }
    }
}

// MARK: - Per-thread last error

/// The calling thread's last failure message, as a C string it owns (freed on its next failure
/// or when the thread exits).
enum LastError {
    nonisolated(unsafe) private static var key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { free($0) }
        return key
    }()

    static func set(_ message: String) {
        let old = pthread_getspecific(key)
        pthread_setspecific(key, strdup(message))
        free(old)
    }

    static var current: UnsafePointer<CChar> {
        if let p = pthread_getspecific(key) { return UnsafePointer(p.assumingMemoryBound(to: CChar.self)) }
        return UnsafeRawPointer(("" as StaticString).utf8Start).assumingMemoryBound(to: CChar.self)
    }
}

@inline(__always)
func fail(_ code: ResultCode, _ message: String) -> Int32 {
    LastError.set(message)
    return code.rawValue
}

/// Runs `body`, turning any error into its code and message.
@inline(__always)
func guarded(_ body: () throws(ChorusError) -> Void) -> Int32 {
    do {
        try body()
        return ResultCode.success.rawValue
    } catch {
        return fail(ResultCode(error), error.description)
    }
}

// MARK: - Handles

/// Live communicators by handle. A handle is a number that is never reused (not an address),
/// so one used after `chorusCommDestroy` is found missing and reported, never dereferenced.
enum Handles {
    private static let table = Mutex<(next: UInt, live: [UInt: Communicator])>((1, [:]))

    static func register(_ comm: Communicator) -> OpaquePointer {
        let id = table.withLock { t -> UInt in
            let id = t.next
            t.next += 1
            t.live[id] = comm
            return id
        }
        return OpaquePointer(bitPattern: id << 4)!
    }

    static func lookup(_ handle: OpaquePointer?, _ function: String) throws(ChorusError) -> Communicator {
        guard let handle else { throw .invalidArgument("\(function): the communicator is NULL") }
        let bits = UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(handle)))
        let comm = table.withLock { $0.live[bits >> 4] }
        guard bits & 0xF == 0, let comm else {
            throw .invalidArgument("\(function): \(describe(handle)) is not a live communicator (destroyed, or never made by chorusCommInit*)")
        }
        return comm
    }

    static func remove(_ handle: OpaquePointer?, _ function: String) throws(ChorusError) -> Communicator {
        let comm = try lookup(handle, function)
        let bits = UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(handle!)))
        _ = table.withLock { $0.live.removeValue(forKey: bits >> 4) }
        return comm
    }

    static func describe(_ handle: OpaquePointer) -> String {
        "handle 0x" + String(UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(handle))), radix: 16)
    }
}

// MARK: - Arguments

private let dataTypes: [DataType] = [.float32, .float64, .float16, .bfloat16, .int8, .uint8, .int32, .uint32, .int64, .uint64]
private let reduceOps: [ReduceOp] = [.sum, .prod, .min, .max, .avg]

@inline(__always)
func dataType(_ raw: Int32, _ function: String) throws(ChorusError) -> DataType {
    guard raw >= 0, Int(raw) < dataTypes.count else {
        throw .invalidArgument("\(function): datatype \(raw) is not a chorusDataType_t (0 to \(dataTypes.count - 1))")
    }
    return dataTypes[Int(raw)]
}

@inline(__always)
func reduceOp(_ raw: Int32, _ function: String) throws(ChorusError) -> ReduceOp {
    guard raw >= 0, Int(raw) < reduceOps.count else {
        throw .invalidArgument("\(function): op \(raw) is not a chorusRedOp_t (0 to \(reduceOps.count - 1))")
    }
    return reduceOps[Int(raw)]
}

/// A `size_t` count (as C passes it) that fits an `Int`.
@inline(__always)
func elementCount(_ raw: UInt, _ function: String) throws(ChorusError) -> Int {
    guard raw <= UInt(Int.max / 16) else { throw .invalidArgument("\(function): count \(raw) is too large (a negative value cast to size_t?)") }
    return Int(raw)
}

// MARK: - Version, unique id, init, destroy

@_cdecl("chorusGetVersion")
public func chorusGetVersion(_ version: UnsafeMutablePointer<Int32>?) -> Int32 {
    guard let version else { return fail(.invalidArgument, "chorusGetVersion: version is NULL") }
    version.pointee = 100  // 0.1.0 as major * 10000 + minor * 100 + patch
    return ResultCode.success.rawValue
}

/// The unique id's text: `chorus1 <address> <token>`, NUL-terminated, in 128 bytes.
private let uniqueIdBytes = 128
private let uniqueIdPrefix = "chorus1 "

@_cdecl("chorusGetUniqueId")
public func chorusGetUniqueId(_ id: UnsafeMutableRawPointer?) -> Int32 {
    guard let id else { return fail(.invalidArgument, "chorusGetUniqueId: uniqueId is NULL") }
    return guarded { () throws(ChorusError) in
        let rendezvous = try NewRendezvous.make()
        let text = Array((uniqueIdPrefix + rendezvous.address + " " + rendezvous.jobToken).utf8)
        guard text.count < uniqueIdBytes else { throw .configuration("chorusGetUniqueId: the address \(rendezvous.address) is too long for a unique id") }
        memset(id, 0, uniqueIdBytes)
        text.withUnsafeBytes { id.copyMemory(from: $0.baseAddress!, byteCount: text.count) }
    }
}

@_cdecl("chorusCommInitRank")
public func chorusCommInitRank(_ comm: UnsafeMutablePointer<OpaquePointer?>?, _ nranks: Int32, _ id: UnsafeRawPointer?,
                               _ rank: Int32, _ timeoutSeconds: Double) -> Int32 {
    let function = "chorusCommInitRank"
    guard let comm else { return fail(.invalidArgument, "\(function): comm is NULL") }
    comm.pointee = nil
    guard let id else { return fail(.invalidArgument, "\(function): uniqueId is NULL") }
    return guarded { () throws(ChorusError) in
        let bytes = UnsafeRawBufferPointer(start: id, count: uniqueIdBytes)
        let text = String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        guard bytes.contains(0), text.hasPrefix(uniqueIdPrefix) else {
            throw .invalidArgument("\(function): uniqueId was not made by chorusGetUniqueId (or was not copied whole to this rank)")
        }
        let fields = text.dropFirst(uniqueIdPrefix.count).split(separator: " ").map(String.init)
        guard fields.count == 2 else { throw .invalidArgument("\(function): uniqueId is damaged ('\(text)')") }
        guard nranks >= 1 else { throw .invalidArgument("\(function): nranks \(nranks) must be at least 1") }
        guard rank >= 0 && rank < nranks else { throw .invalidArgument("\(function): rank \(rank) is not in 0..<\(nranks)") }
        guard timeoutSeconds.isFinite || timeoutSeconds.isNaN == false else {
            throw .invalidArgument("\(function): timeoutSeconds \(timeoutSeconds) is not a number of seconds")
        }
        var configuration = try ChorusConfiguration(environment: ChorusConfiguration.processEnvironment())
        if timeoutSeconds > 0 && timeoutSeconds.isFinite { configuration.timeout = .seconds(timeoutSeconds) }
        let made = try Communicator(rank: Int(rank), size: Int(nranks), rendezvous: fields[0], jobToken: fields[1],
                                    configuration: configuration)
        comm.pointee = Handles.register(made)
    }
}

@_cdecl("chorusCommInitFromEnv")
public func chorusCommInitFromEnv(_ comm: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    guard let comm else { return fail(.invalidArgument, "chorusCommInitFromEnv: comm is NULL") }
    comm.pointee = nil
    return guarded { () throws(ChorusError) in
        comm.pointee = Handles.register(try Communicator.fromEnvironment())
    }
}

@_cdecl("chorusCommSplit")
public func chorusCommSplit(_ comm: OpaquePointer?, _ color: Int32, _ key: Int32, _ newcomm: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    let function = "chorusCommSplit"
    guard let newcomm else { return fail(.invalidArgument, "\(function): newcomm is NULL") }
    newcomm.pointee = nil
    return guarded { () throws(ChorusError) in
        let parent = try Handles.lookup(comm, function)
        guard color >= 0 || color == Int32(Communicator.noColor) else {
            throw .invalidArgument("\(function): color \(color) must be 0 or more, or CHORUS_SPLIT_NOCOLOR")
        }
        if let child = try parent.split(color: Int(color), key: Int(key)) { newcomm.pointee = Handles.register(child) }
    }
}

@_cdecl("chorusCommDestroy")
public func chorusCommDestroy(_ comm: OpaquePointer?) -> Int32 {
    guarded { () throws(ChorusError) in try Handles.remove(comm, "chorusCommDestroy").close() }
}

@_cdecl("chorusCommAbort")
public func chorusCommAbort(_ comm: OpaquePointer?) -> Int32 {
    guarded { () throws(ChorusError) in try Handles.lookup(comm, "chorusCommAbort").abort(reason: "aborted through chorusCommAbort") }
}

@_cdecl("chorusCommGetAsyncError")
public func chorusCommGetAsyncError(_ comm: OpaquePointer?, _ asyncError: UnsafeMutablePointer<Int32>?) -> Int32 {
    guard let asyncError else { return fail(.invalidArgument, "chorusCommGetAsyncError: asyncError is NULL") }
    return guarded { () throws(ChorusError) in
        let error = try Handles.lookup(comm, "chorusCommGetAsyncError").asyncError()
        asyncError.pointee = error.map { ResultCode($0).rawValue } ?? ResultCode.success.rawValue
    }
}

@_cdecl("chorusCommCount")
public func chorusCommCount(_ comm: OpaquePointer?, _ count: UnsafeMutablePointer<Int32>?) -> Int32 {
    guard let count else { return fail(.invalidArgument, "chorusCommCount: count is NULL") }
    return guarded { () throws(ChorusError) in count.pointee = Int32(try Handles.lookup(comm, "chorusCommCount").size) }
}

@_cdecl("chorusCommUserRank")
public func chorusCommUserRank(_ comm: OpaquePointer?, _ rank: UnsafeMutablePointer<Int32>?) -> Int32 {
    guard let rank else { return fail(.invalidArgument, "chorusCommUserRank: rank is NULL") }
    return guarded { () throws(ChorusError) in rank.pointee = Int32(try Handles.lookup(comm, "chorusCommUserRank").rank) }
}

// MARK: - Collectives and point-to-point

@_cdecl("chorusAllReduce")
public func chorusAllReduce(_ send: UnsafeRawPointer?, _ receive: UnsafeMutableRawPointer?, _ count: UInt, _ type: Int32,
                            _ op: Int32, _ comm: OpaquePointer?) -> Int32 {
    let function = "chorusAllReduce"
    return guarded { () throws(ChorusError) in
        try Handles.lookup(comm, function).allReduce(send, receive, count: try elementCount(count, function),
                                                     dataType: try dataType(type, function), op: try reduceOp(op, function))
    }
}

@_cdecl("chorusAllGather")
public func chorusAllGather(_ send: UnsafeRawPointer?, _ receive: UnsafeMutableRawPointer?, _ count: UInt, _ type: Int32,
                            _ comm: OpaquePointer?) -> Int32 {
    let function = "chorusAllGather"
    return guarded { () throws(ChorusError) in
        try Handles.lookup(comm, function).allGather(send, receive, count: try elementCount(count, function),
                                                     dataType: try dataType(type, function))
    }
}

@_cdecl("chorusReduceScatter")
public func chorusReduceScatter(_ send: UnsafeRawPointer?, _ receive: UnsafeMutableRawPointer?, _ count: UInt, _ type: Int32,
                                _ op: Int32, _ comm: OpaquePointer?) -> Int32 {
    let function = "chorusReduceScatter"
    return guarded { () throws(ChorusError) in
        try Handles.lookup(comm, function).reduceScatter(send, receive, count: try elementCount(count, function),
                                                         dataType: try dataType(type, function), op: try reduceOp(op, function))
    }
}

@_cdecl("chorusBroadcast")
public func chorusBroadcast(_ send: UnsafeRawPointer?, _ receive: UnsafeMutableRawPointer?, _ count: UInt, _ type: Int32,
                            _ root: Int32, _ comm: OpaquePointer?) -> Int32 {
    let function = "chorusBroadcast"
    return guarded { () throws(ChorusError) in
        try Handles.lookup(comm, function).broadcast(send, receive, count: try elementCount(count, function),
                                                     dataType: try dataType(type, function), root: Int(root))
    }
}

@_cdecl("chorusReduce")
public func chorusReduce(_ send: UnsafeRawPointer?, _ receive: UnsafeMutableRawPointer?, _ count: UInt, _ type: Int32,
                         _ op: Int32, _ root: Int32, _ comm: OpaquePointer?) -> Int32 {
    let function = "chorusReduce"
    return guarded { () throws(ChorusError) in
        try Handles.lookup(comm, function).reduce(send, receive, count: try elementCount(count, function),
                                                  dataType: try dataType(type, function), op: try reduceOp(op, function), root: Int(root))
    }
}

@_cdecl("chorusSend")
public func chorusSend(_ buffer: UnsafeRawPointer?, _ count: UInt, _ type: Int32, _ peer: Int32, _ comm: OpaquePointer?) -> Int32 {
    let function = "chorusSend"
    return guarded { () throws(ChorusError) in
        try Handles.lookup(comm, function).send(buffer, count: try elementCount(count, function), dataType: try dataType(type, function), to: Int(peer))
    }
}

@_cdecl("chorusRecv")
public func chorusRecv(_ buffer: UnsafeMutableRawPointer?, _ count: UInt, _ type: Int32, _ peer: Int32, _ comm: OpaquePointer?) -> Int32 {
    let function = "chorusRecv"
    return guarded { () throws(ChorusError) in
        try Handles.lookup(comm, function).receive(buffer, count: try elementCount(count, function), dataType: try dataType(type, function), from: Int(peer))
    }
}

@_cdecl("chorusBarrier")
public func chorusBarrier(_ comm: OpaquePointer?) -> Int32 {
    guarded { () throws(ChorusError) in try Handles.lookup(comm, "chorusBarrier").barrier() }
}

// MARK: - Shared buffers

@_cdecl("chorusMemAlloc")
public func chorusMemAlloc(_ pointer: UnsafeMutablePointer<UnsafeMutableRawPointer?>?, _ size: UInt) -> Int32 {
    guard let pointer else { return fail(.invalidArgument, "chorusMemAlloc: ptr is NULL") }
    return guarded { () throws(ChorusError) in
        guard size > 0, size <= UInt(Int.max) else {
            throw .invalidArgument("chorusMemAlloc: size \(size) must be positive (and not a negative value cast to size_t)")
        }
        pointer.pointee = try SharedBuffer.allocate(byteCount: Int(size)).baseAddress
    }
}

@_cdecl("chorusMemFree")
public func chorusMemFree(_ pointer: UnsafeMutableRawPointer?) -> Int32 {
    guard let pointer else { return fail(.invalidArgument, "chorusMemFree: ptr is NULL") }
    guard SharedBuffer.free(pointer) else {
        return fail(.invalidArgument, "chorusMemFree: \(pointer) is not a buffer chorusMemAlloc returned (or it was freed already)")
    }
    return ResultCode.success.rawValue
}

@_cdecl("chorusGroupStart")
public func chorusGroupStart() -> Int32 {
    Communicator.groupStart()
    return ResultCode.success.rawValue
}

@_cdecl("chorusGroupEnd")
public func chorusGroupEnd() -> Int32 {
    guarded { () throws(ChorusError) in try Communicator.groupEnd() }
}

// MARK: - Errors

@_cdecl("chorusGetErrorString")
public func chorusGetErrorString(_ code: Int32) -> UnsafePointer<CChar> {
    UnsafeRawPointer(ResultCode.name(code).utf8Start).assumingMemoryBound(to: CChar.self)
}

@_cdecl("chorusGetLastError")
public func chorusGetLastError() -> UnsafePointer<CChar> {
    LastError.current
}
