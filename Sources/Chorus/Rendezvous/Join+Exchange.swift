import ChorusCore
import ChorusTransport

extension Communicator {
    /// The set-up exchange of a network transport that publishes addresses through the store.
    ///
    /// Every rank publishes under `key/RANK` either `ok DATA` or `error REASON`: `open` makes
    /// this rank's transport (publishing its failure if it throws), `describe` gives the DATA to
    /// publish, and the result is every rank's DATA. A rank that could not set up makes every
    /// rank fail at once with its reason, instead of at the rendezvous deadline. On any failure
    /// after `open`, `close` releases the transport.
    static func exchange<T>(_ key: String, transport name: String, rank: Int, client: RendezvousClient,
                            open: () throws -> T, describe: (T) -> String, close: (T) -> Void) throws(ChorusError) -> (T, [String]) {
        let opened: T
        do {
            opened = try open()
        } catch {
            try client.set("\(key)/\(rank)", Array("error \(error)".utf8))
            throw .unsupported("CHORUS_TRANSPORT=\(key): rank \(rank): \(error)")
        }
        do throws(ChorusError) {
            try client.set("\(key)/\(rank)", Array("ok \(describe(opened))".utf8))
            let published = try client.gather(key).map(\.utf8String)
            var data: [String] = []
            for (r, entry) in published.enumerated() {
                if entry.hasPrefix("error ") {
                    throw ChorusError.transport("rank \(r) cannot use the \(name) transport: \(entry.dropFirst(6))")
                }
                guard entry.hasPrefix("ok ") else {
                    throw ChorusError.rendezvous("rank \(r) published a \(name) entry this rank cannot read: '\(entry.prefix(80))'")
                }
                data.append(String(entry.dropFirst(3)))
            }
            return (opened, data)
        } catch {
            close(opened)
            throw error
        }
    }
}
