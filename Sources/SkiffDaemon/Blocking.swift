import NIOPosix

/// Runs blocking work (control-socket round trips, file copies, process waits) on a thread
/// pool of its own, never on the NIO event loops or the Swift concurrency pool.
public final class BlockingPool: Sendable {
    let pool: NIOThreadPool

    public init(threads: Int = 16) {
        pool = NIOThreadPool(numberOfThreads: threads)
        pool.start()
    }

    public func run<T: Sendable>(_ body: @Sendable @escaping () throws -> T) async throws -> T {
        try await pool.runIfActive(body)
    }

    /// Stops the threads once the work given to them is done (the daemon's exit).
    public func shutdown() async {
        try? await pool.shutdownGracefully()
    }
}
