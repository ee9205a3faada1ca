import Foundation
import SkiffAPI
import SkiffSpec
import SkiffStore

/// Between the generated API types and the daemon's own. Specs cross through JSON: both sides
/// decode strictly (the generated type refuses unknown fields, `VMSpec` validates values), and
/// their field names are the same by construction (a test checks the round trip).
enum APIConversions {
    static func spec(_ api: Components.Schemas.VMSpec) throws(DaemonError) -> VMSpec {
        do {
            let data = try JSONEncoder().encode(api)
            let spec = try JSONDecoder().decode(VMSpec.self, from: data)
            try spec.validate()
            return spec
        } catch let error as SpecError {
            throw DaemonError(.invalidRequest, error.message)
        } catch let error as DecodingError {
            throw DaemonError(.invalidRequest, SpecLoader.describe(error))
        } catch {
            throw DaemonError(.invalidRequest, "\(error)")
        }
    }

    static func apiSpec(_ json: String) -> Components.Schemas.VMSpec? {
        try? JSONDecoder().decode(Components.Schemas.VMSpec.self, from: Data(json.utf8))
    }

    static func vm(_ r: VMRecord, files: VMFiles, cgroup: String?) -> Components.Schemas.Vm {
        let spec = apiSpec(r.spec) ?? Components.Schemas.VMSpec(name: r.name, kernel: "?")
        var exit: Components.Schemas.ExitInfo?
        if let at = r.lastExitAt {
            exit = .init(status: r.lastExitStatus.map { Int32(truncatingIfNeeded: $0) }, signal: r.lastExitSignal.map { Int32(truncatingIfNeeded: $0) },
                         at: at, description: r.lastExitDescription ?? "")
        }
        return Components.Schemas.Vm(
            name: r.name, spec: spec, state: Components.Schemas.VMState(rawValue: r.actualState) ?? .stopped,
            desiredState: .init(rawValue: r.desiredState) ?? .stopped, pid: r.pid.map { r.monitorPid ?? $0 }, apiSocket: r.pid != nil ? r.apiSocket : nil,
            consoleLog: files.consoleLog, cgroup: cgroup, restartCount: r.restartCount, lastExit: exit, createdAt: r.createdAt,
            startedAt: r.pid != nil ? r.startedAt : nil)
    }

    static func task(_ t: TaskRecord) -> Components.Schemas.Task {
        var result: Components.Schemas.Task.ResultPayload?
        if let json = t.result, let dict = try? JSONDecoder().decode([String: String].self, from: Data(json.utf8)) {
            result = .init(additionalProperties: dict)
        }
        var error: Components.Schemas._Error?
        if let code = t.errorCode {
            error = .init(code: .init(rawValue: code) ?? ._internal, message: t.errorMessage ?? "")
        }
        return Components.Schemas.Task(
            id: t.id, kind: .init(rawValue: t.kind) ?? .snapshot, vm: t.vm, state: .init(rawValue: t.state) ?? .running,
            progress: t.progress, message: t.message, result: result, error: error, createdAt: t.createdAt, updatedAt: t.updatedAt)
    }

    static func event(_ e: EventRecord) -> Components.Schemas.Event {
        Components.Schemas.Event(id: e.id ?? 0, time: e.time, vm: e.vm, kind: e.kind, message: e.message)
    }

    static func error(_ e: DaemonError) -> Components.Responses._Error {
        .init(body: .json(.init(code: .init(rawValue: e.code.rawValue) ?? ._internal, message: e.message)))
    }
}
