#if canImport(Glibc)
import Glibc
#endif

/// The self-pipe every transport that sleeps in `poll` keeps, so that `abort` from another
/// thread wakes its driver: `wake` writes a byte, `sleep` polls the transport's descriptors and
/// this pipe together until one is ready or the deadline, and drains the pipe when it woke.
/// Both ends are non-blocking and close on exec (a library in a training process must not leak
/// descriptors into the workers it spawns).
package final class WakePipe: @unchecked Sendable {
    private var ends: (read: Int32, write: Int32)

    package init() throws(TransportError) {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw Syscall.error(.connect, "pipe", "cannot make the wake-up pipe") }
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        ends = (fds[0], fds[1])
    }

    /// Wakes the thread in `sleep` (or makes its next `sleep` return at once). Any thread.
    package func wake() {
        var one: UInt8 = 1
        _ = write(ends.write, &one, 1)
    }

    /// Polls `fds` and the pipe until one is ready, `deadline` passes or `longest` elapses
    /// (the caller comes back then for its own checks). `fds` gets the revents.
    package func sleep(watching fds: inout [pollfd], until deadline: ContinuousClock.Instant,
                       atMost longest: Duration = .milliseconds(100)) {
        let left = min(deadline - .now, longest)
        guard left > .zero else { return }
        let ms = Int32(max(1, left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000))
        fds.append(pollfd(fd: ends.read, events: Int16(POLLIN), revents: 0))
        _ = poll(&fds, nfds_t(fds.count), ms)
        if fds.removeLast().revents != 0 {
            var drain = [UInt8](repeating: 0, count: 64)
            _ = read(ends.read, &drain, 64)
        }
    }

    /// Closes both ends. Idempotent; called by the transport's `close`.
    package func close() {
        guard ends.read >= 0 else { return }
        _ = Glibc.close(ends.read)
        _ = Glibc.close(ends.write)
        ends = (-1, -1)
    }

    deinit { close() }
}
