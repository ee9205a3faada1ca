import Foundation
import Logging
import SkiffStore
import Synchronization

/// Records events in the database and hands them to live subscribers (`GET /events?follow`).
public final class EventBus: Sendable {
    private let store: Store
    private let logger: Logger
    private let subscribers = Mutex<[UUID: AsyncStream<EventRecord>.Continuation]>([:])

    init(store: Store, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    /// Records and broadcasts one event. A database that cannot take it (full disk) still
    /// broadcasts it and logs the failure.
    func publish(vm: String?, kind: String, _ message: String) {
        var event = EventRecord(vm: vm, kind: kind, message: message)
        do {
            event = try store.appendEvent(vm: vm, kind: kind, message: message)
        } catch {
            logger.error("cannot record event", metadata: ["kind": "\(kind)", "error": "\(error)"])
        }
        logger.info("\(message)", metadata: ["event": "\(kind)", "vm": "\(vm ?? "-")"])
        for c in subscribers.withLock({ Array($0.values) }) { c.yield(event) }
    }

    /// A stream of the events published from now on; it ends when the caller stops iterating.
    func subscribe() -> AsyncStream<EventRecord> {
        let id = UUID()
        let (stream, continuation) = AsyncStream<EventRecord>.makeStream(bufferingPolicy: .bufferingNewest(1000))
        continuation.onTermination = { [weak self] _ in
            _ = self?.subscribers.withLock { $0.removeValue(forKey: id) }
        }
        subscribers.withLock { $0[id] = continuation }
        return stream
    }
}
