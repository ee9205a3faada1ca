#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Synchronization

/// Puts a terminal into raw mode and restores its previous settings on `restore()`.
public final class TerminalMode: Sendable {
    private let fd: Int32
    private let saved: termios
    private let active = Atomic<Bool>(true)

    /// Switches `fd` to raw mode; returns nil when `fd` is not a terminal.
    public init?(rawModeFor fd: Int32) {
        guard isatty(fd) == 1 else { return nil }
        var t = termios()
        guard unsafe tcgetattr(fd, &t) == 0 else { return nil }
        self.fd = fd
        saved = t
        unsafe cfmakeraw(&t)
        // Keep output post-processing so "\n" from the guest still returns the carriage.
        t.c_oflag |= tcflag_t(OPOST | ONLCR)
        guard unsafe tcsetattr(fd, TCSANOW, &t) == 0 else { return nil }
    }

    /// Restores the settings the terminal had before.
    public func restore() {
        guard active.exchange(false, ordering: .acquiringAndReleasing) else { return }
        var settings = saved
        _ = unsafe tcsetattr(fd, TCSANOW, &settings)
    }

    deinit { restore() }
}
