import Foundation
import HostResources
import OpenAPIRuntime
import SkiffAPI
import SkiffSpec
import SkiffStore

/// The REST API (generated from openapi.yaml) over the supervisor.
struct APIHandler: APIProtocol {
    let supervisor: Supervisor

    private func vmBody(_ r: VMRecord) -> Components.Schemas.Vm {
        APIConversions.vm(r, files: supervisor.files(r.name), cgroup: supervisor.cgroups?.path(vm: r.name))
    }

    private func vmResponse(_ r: VMRecord) -> Components.Responses.Vm { .init(body: .json(vmBody(r))) }

    private static func status(_ e: DaemonError) -> Int { e.code.httpStatus }

    func getHost(_ input: Operations.GetHost.Input) async throws -> Operations.GetHost.Output {
        .ok(.init(body: .json(supervisor.hostReport())))
    }

    func updateKSM(_ input: Operations.UpdateKSM.Input) async throws -> Operations.UpdateKSM.Output {
        guard case .json(let body) = input.body else { return .default(statusCode: 400, APIConversions.error(DaemonError(.invalidRequest, "expected JSON"))) }
        do {
            try RequestChecks.range(body.pagesToScan, 1...1_000_000, "pagesToScan")
            try RequestChecks.range(body.sleepMillisecs, 1...100_000, "sleepMillisecs")
            try supervisor.configureKSM(run: body.run, pagesToScan: body.pagesToScan, sleepMilliseconds: body.sleepMillisecs)
            return .ok(.init(body: .json(supervisor.hostReport())))
        } catch {
            return .default(statusCode: Self.status(error), APIConversions.error(error))
        }
    }

    func listVMs(_ input: Operations.ListVMs.Input) async throws -> Operations.ListVMs.Output {
        do {
            return .ok(.init(body: .json(try supervisor.list().map(vmBody))))
        } catch {
            return .default(statusCode: Self.status(error), APIConversions.error(error))
        }
    }

    func createVM(_ input: Operations.CreateVM.Input) async throws -> Operations.CreateVM.Output {
        guard case .json(let body) = input.body else { return .default(statusCode: 400, APIConversions.error(DaemonError(.invalidRequest, "expected JSON"))) }
        do {
            let spec = try APIConversions.spec(body)
            var record = try await supervisor.create(spec)
            if input.query.start == true { record = try await supervisor.start(spec.name) }
            return .created(.init(body: .json(vmBody(record))))
        } catch {
            return .default(statusCode: Self.status(error), APIConversions.error(error))
        }
    }

    func getVM(_ input: Operations.GetVM.Input) async throws -> Operations.GetVM.Output {
        do {
            return .ok(.init(body: .json(vmBody(try supervisor.show(input.path.name)))))
        } catch {
            return .default(statusCode: Self.status(error), APIConversions.error(error))
        }
    }

    func deleteVM(_ input: Operations.DeleteVM.Input) async throws -> Operations.DeleteVM.Output {
        do {
            try await supervisor.delete(input.path.name, force: input.query.force ?? false)
            return .noContent(.init())
        } catch {
            return .default(statusCode: Self.status(error), APIConversions.error(error))
        }
    }

    func startVM(_ input: Operations.StartVM.Input) async throws -> Operations.StartVM.Output {
        do { return .ok(vmResponse(try await supervisor.start(input.path.name))) } catch {
            return .default(statusCode: Self.status(error), APIConversions.error(error))
        }
    }

    func stopVM(_ input: Operations.StopVM.Input) async throws -> Operations.StopVM.Output {
        do {
            try RequestChecks.range(input.query.timeout, 0...3600, "timeout")
            let task = try await supervisor.stop(input.path.name, timeout: input.query.timeout.map(Double.init))
            return .accepted(.init(body: .json(APIConversions.task(task))))
        } catch {
            return .default(statusCode: Self.status(error), APIConversions.error(error))
        }
    }

    func killVM(_ input: Operations.KillVM.Input) async throws -> Operations.KillVM.Output {
        do { return .ok(vmResponse(try await supervisor.kill(input.path.name))) } catch {
            return .default(statusCode: Self.status(error), APIConversions.error(error))
        }
    }

    func rebootVM(_ input: Operations.RebootVM.Input) async throws -> Operations.RebootVM.Output {
        do {
            try RequestChecks.range(input.query.timeout, 0...3600, "timeout")
            let task = try await supervisor.reboot(input.path.name, timeout: input.query.timeout.map(Double.init))
            return .accepted(.init(body: .json(APIConversions.task(task))))
        } catch {
            return .default(statusCode: Self.status(error), APIConversions.error(error))
        }
    }

    func pauseVM(_ input: Operations.PauseVM.Input) async throws -> Operations.PauseVM.Output {
        do { return .ok(vmResponse(try await supervisor.pause(input.path.name))) } catch {
            return .default(statusCode: Self.status(error), APIConversions.error(error))
        }
    }

    func resumeVM(_ input: Operations.ResumeVM.Input) async throws -> Operations.ResumeVM.Output {
        do { return .ok(vmResponse(try await supervisor.resume(input.path.name))) } catch {
            return .default(statusCode: Self.status(error), APIConversions.error(error))
        }
    }

    func setBalloon(_ input: Operations.SetBalloon.Input) async throws -> Operations.SetBalloon.Output {
        guard case .json(let body) = input.body else { return .default(statusCode: 400, APIConversions.error(DaemonError(.invalidRequest, "expected JSON"))) }
        do {
            try RequestChecks.name(input.path.name)
            try RequestChecks.range(body.targetMiB, 0...16_777_216, "targetMiB")
            return .ok(.init(body: .json(try await supervisor.setBalloon(input.path.name, targetMiB: UInt64(body.targetMiB)))))
        } catch {
            return .default(statusCode: Self.status(error), APIConversions.error(error))
        }
    }

    func getBalloon(_ input: Operations.GetBalloon.Input) async throws -> Operations.GetBalloon.Output {
        do {
            return .ok(.init(body: .json(try await supervisor.balloon(input.path.name))))
        } catch {
            return .default(statusCode: Self.status(error), APIConversions.error(error))
        }
    }

    func setRateLimit(_ input: Operations.SetRateLimit.Input) async throws -> Operations.SetRateLimit.Output {
        guard case .json(let body) = input.body else { return .default(statusCode: 400, APIConversions.error(DaemonError(.invalidRequest, "expected JSON"))) }
        do {
            try RequestChecks.name(input.path.name)
            try RequestChecks.device(body.device)
            for (field, value) in [("bandwidth", body.bandwidth), ("iops", body.iops), ("burst", body.burst), ("rxBandwidth", body.rxBandwidth),
                                   ("txBandwidth", body.txBandwidth), ("rxPps", body.rxPps), ("txPps", body.txPps)] {
                try RequestChecks.range(value, 0...Int64.max, field)
            }
            return .ok(vmResponse(try await supervisor.setRateLimit(input.path.name, body)))
        } catch {
            return .default(statusCode: Self.status(error), APIConversions.error(error))
        }
    }

    func setQoS(_ input: Operations.SetQoS.Input) async throws -> Operations.SetQoS.Output {
        guard case .json(let body) = input.body else { return .default(statusCode: 400, APIConversions.error(DaemonError(.invalidRequest, "expected JSON"))) }
        do {
            return .ok(vmResponse(try await supervisor.setQoS(input.path.name, body)))
        } catch {
            return .default(statusCode: Self.status(error), APIConversions.error(error))
        }
    }

    /// The WebSocket upgrade itself is served by `ConsoleEndpoint` (the WebSocket router sees
    /// upgrade requests first); a plain GET of the console lands here and is told to upgrade.
    func attachConsole(_ input: Operations.AttachConsole.Input) async throws -> Operations.AttachConsole.Output {
        do {
            try RequestChecks.name(input.path.name)
            _ = try supervisor.record(input.path.name)
        } catch {
            return .default(statusCode: Self.status(error), APIConversions.error(error))
        }
        return .default(statusCode: 426, APIConversions.error(DaemonError(
            .invalidRequest, "the console is a WebSocket: send Connection: Upgrade and Upgrade: websocket (skiff console \(input.path.name))")))
    }

    func getConsoleLog(_ input: Operations.GetConsoleLog.Input) async throws -> Operations.GetConsoleLog.Output {
        do {
            try RequestChecks.range(input.query.bytes, 1...(4 << 20), "bytes")
            try RequestChecks.range(input.query.offset, 0...Int64.max, "offset")
            let (bytes, end) = try supervisor.consoleLog(input.path.name, maxBytes: input.query.bytes ?? 65536, after: input.query.offset)
            return .ok(.init(headers: .init(skiffLogEnd: end), body: .binary(HTTPBody(bytes))))
        } catch {
            return .default(statusCode: Self.status(error), APIConversions.error(error))
        }
    }

    func snapshotVM(_ input: Operations.SnapshotVM.Input) async throws -> Operations.SnapshotVM.Output {
        guard case .json(let body) = input.body else { return .default(statusCode: 400, APIConversions.error(DaemonError(.invalidRequest, "expected JSON"))) }
        do {
            let task = try supervisor.snapshot(input.path.name, directory: body.directory, diff: body.diff ?? false)
            return .accepted(.init(body: .json(APIConversions.task(task))))
        } catch {
            return .default(statusCode: Self.status(error), APIConversions.error(error))
        }
    }

    func restoreVM(_ input: Operations.RestoreVM.Input) async throws -> Operations.RestoreVM.Output {
        guard case .json(let body) = input.body else { return .default(statusCode: 400, APIConversions.error(DaemonError(.invalidRequest, "expected JSON"))) }
        do {
            let task = try supervisor.restore(input.path.name, directory: body.directory)
            return .accepted(.init(body: .json(APIConversions.task(task))))
        } catch {
            return .default(statusCode: Self.status(error), APIConversions.error(error))
        }
    }

    func forkVM(_ input: Operations.ForkVM.Input) async throws -> Operations.ForkVM.Output {
        guard case .json(let body) = input.body else { return .default(statusCode: 400, APIConversions.error(DaemonError(.invalidRequest, "expected JSON"))) }
        do {
            try RequestChecks.range(body.count, 1...64, "count")
            if let prefix = body.namePrefix { try RequestChecks.name(prefix, "namePrefix") }
            let task = try supervisor.fork(input.path.name, count: body.count, prefix: body.namePrefix)
            return .accepted(.init(body: .json(APIConversions.task(task))))
        } catch {
            return .default(statusCode: Self.status(error), APIConversions.error(error))
        }
    }

    func migrateVM(_ input: Operations.MigrateVM.Input) async throws -> Operations.MigrateVM.Output {
        guard case .json(let body) = input.body else { return .default(statusCode: 400, APIConversions.error(DaemonError(.invalidRequest, "expected JSON"))) }
        do {
            try RequestChecks.range(body.maxDowntimeMs, 1...60_000, "maxDowntimeMs")
            try RequestChecks.range(body.bandwidth, (1 << 20)...Int64.max, "bandwidth")
            let task = try supervisor.migrate(input.path.name, destination: body.destination, maxDowntimeMs: body.maxDowntimeMs,
                                              copyDisks: body.copyDisks ?? false, bandwidth: body.bandwidth.map { UInt64($0) })
            return .accepted(.init(body: .json(APIConversions.task(task))))
        } catch {
            return .default(statusCode: Self.status(error), APIConversions.error(error))
        }
    }

    func createIncomingVM(_ input: Operations.CreateIncomingVM.Input) async throws -> Operations.CreateIncomingVM.Output {
        guard case .json(let body) = input.body else { return .default(statusCode: 400, APIConversions.error(DaemonError(.invalidRequest, "expected JSON"))) }
        do {
            try RequestChecks.range(body.timeout, 1...86_400, "timeout")
            let spec = try APIConversions.spec(body.spec)
            let incoming = try await supervisor.incoming(spec, listen: body.listen, timeout: Double(body.timeout ?? 600),
                                                         copyDisks: body.copyDisks ?? false)
            return .created(.init(body: .json(.init(vm: vmBody(incoming.record), address: incoming.address))))
        } catch {
            return .default(statusCode: Self.status(error), APIConversions.error(error))
        }
    }

    func listTasks(_ input: Operations.ListTasks.Input) async throws -> Operations.ListTasks.Output {
        do {
            return .ok(.init(body: .json(try supervisor.store.recentTasks().map(APIConversions.task))))
        } catch {
            let e = DaemonError.from(error)
            return .default(statusCode: Self.status(e), APIConversions.error(e))
        }
    }

    func getTask(_ input: Operations.GetTask.Input) async throws -> Operations.GetTask.Output {
        do {
            guard let t = try supervisor.store.task(id: input.path.id) else { throw DaemonError(.notFound, "no task '\(input.path.id.prefix(64))'") }
            return .ok(.init(body: .json(APIConversions.task(t))))
        } catch {
            let e = DaemonError.from(error)
            return .default(statusCode: Self.status(e), APIConversions.error(e))
        }
    }

    func listImages(_ input: Operations.ListImages.Input) async throws -> Operations.ListImages.Output {
        do {
            let images = try supervisor.store.allImages().map { i in
                Components.Schemas.Image(name: i.name, path: i.path, format: .init(rawValue: i.format) ?? .raw, sizeBytes: i.sizeBytes, createdAt: i.createdAt)
            }
            return .ok(.init(body: .json(images)))
        } catch {
            let e = DaemonError.from(error)
            return .default(statusCode: Self.status(e), APIConversions.error(e))
        }
    }

    func importImage(_ input: Operations.ImportImage.Input) async throws -> Operations.ImportImage.Output {
        guard case .json(let body) = input.body else { return .default(statusCode: 400, APIConversions.error(DaemonError(.invalidRequest, "expected JSON"))) }
        do {
            try RequestChecks.name(body.name, "image")
            let task = try supervisor.importImage(name: body.name, source: body.source, format: body.format.map { DiskFormatName(rawValue: $0.rawValue) ?? .raw })
            return .accepted(.init(body: .json(APIConversions.task(task))))
        } catch {
            return .default(statusCode: Self.status(error), APIConversions.error(error))
        }
    }

    func deleteImage(_ input: Operations.DeleteImage.Input) async throws -> Operations.DeleteImage.Output {
        do {
            try supervisor.deleteImage(input.path.image)
            return .noContent(.init())
        } catch {
            return .default(statusCode: Self.status(error), APIConversions.error(error))
        }
    }

    func listEvents(_ input: Operations.ListEvents.Input) async throws -> Operations.ListEvents.Output {
        do {
            try RequestChecks.range(input.query.since, 0...Int64.max, "since")
            if let vm = input.query.vm { try RequestChecks.name(vm) }
        } catch {
            return .default(statusCode: Self.status(error), APIConversions.error(error))
        }
        let since = input.query.since ?? 0
        let vm = input.query.vm
        let past: [EventRecord]
        do {
            past = try supervisor.store.events(since: since, vm: vm)
        } catch {
            let e = DaemonError.from(error)
            return .default(statusCode: Self.status(e), APIConversions.error(e))
        }
        let live = input.query.follow == true ? supervisor.events.subscribe() : nil
        let lastID = past.last?.id ?? since
        let stream = AsyncStream<Components.Schemas.Event> { continuation in
            let task = Task {
                for e in past { continuation.yield(APIConversions.event(e)) }
                if let live {
                    for await e in live where (e.id ?? 0) > lastID && (vm == nil || e.vm == vm) {
                        continuation.yield(APIConversions.event(e))
                    }
                }
                continuation.finish()
            }
            continuation.onTermination = { _ in task.cancel() }
        }
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return .ok(.init(body: .applicationJsonl(HTTPBody(stream.asEncodedJSONLines(encoder: encoder), length: .unknown, iterationBehavior: .single))))
    }

    func getMetrics(_ input: Operations.GetMetrics.Input) async throws -> Operations.GetMetrics.Output {
        .ok(.init(body: .plainText(HTTPBody(await supervisor.metricsText()))))
    }
}
