import Foundation
import SkiffStore

/// Long operations as tasks: a record to poll (`GET /tasks/{id}`), progress while the work
/// runs, and its result or error at the end.
final class TaskRunner: Sendable {
    let store: Store
    let events: EventBus

    init(store: Store, events: EventBus) {
        self.store = store
        self.events = events
    }

    /// Reports progress (0...1) and a message of a running task.
    struct Progress: Sendable {
        let id: String
        let store: Store
        func update(_ fraction: Double, _ message: String? = nil) {
            _ = try? store.updateTask(id) { t in
                t.progress = min(1, max(0, fraction))
                if let message { t.message = message }
            }
        }
    }

    /// Records a task and runs `work` in the background; returns the record at once.
    func launch(kind: String, vm: String?, _ work: @escaping @Sendable (Progress) async throws -> [String: String]) throws(DaemonError) -> TaskRecord {
        let id = UUID().uuidString.lowercased()
        let record = TaskRecord(id: id, kind: kind, vm: vm)
        do { try store.insertTask(record) } catch { throw DaemonError.from(error) }
        events.publish(vm: vm, kind: "task-started", "task \(id) (\(kind)) started")
        let progress = Progress(id: id, store: store)
        Task {
            do {
                let result = try await work(progress)
                let json = (try? JSONEncoder().encode(result)).map { String(decoding: $0, as: UTF8.self) }
                _ = try? store.updateTask(id) { t in
                    t.state = "succeeded"
                    t.progress = 1
                    t.result = json
                }
                events.publish(vm: vm, kind: "task-succeeded", "task \(id) (\(kind)) succeeded")
            } catch {
                let e = DaemonError.from(error)
                _ = try? store.updateTask(id) { t in
                    t.state = "failed"
                    t.errorCode = e.code.rawValue
                    t.errorMessage = e.message
                }
                events.publish(vm: vm, kind: "task-failed", "task \(id) (\(kind)) failed: \(e.message)")
            }
        }
        return record
    }
}
