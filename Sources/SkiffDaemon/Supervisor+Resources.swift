import ControlProtocol
import Foundation
import HostResources
import SkiffAPI
import SkiffSpec
import SkiffStore

extension Supervisor {
    // MARK: Host

    func hostReport() -> Components.Schemas.Host {
        let c = capacity()
        let ksm = KSM().status()
        return Components.Schemas.Host(
            cpus: c.hostCPUs, memoryBytes: Int64(c.hostMemory), cpuAllocationRatio: configuration.cpuAllocationRatio,
            memoryAllocationRatio: configuration.memoryAllocationRatio, allocatedCpus: c.allocatedCPUs,
            allocatedMemoryBytes: Int64(c.allocatedMemory), vms: (try? store.allVMs().count) ?? 0,
            cgroup: Components.Schemas.Host.CgroupPayload(rawValue: cgroups?.version ?? "none") ?? .none,
            memoryPressureSome10: memoryPressure()?.some10,
            ksm: .init(available: ksm.available, run: ksm.run, pagesToScan: ksm.pagesToScan, sleepMillisecs: ksm.sleepMilliseconds,
                       pagesShared: ksm.pagesShared, pagesSharing: ksm.pagesSharing, savedBytes: ksm.savedBytes))
    }

    func configureKSM(run: Bool?, pagesToScan: Int?, sleepMilliseconds: Int?) throws(DaemonError) {
        guard KSM().status().available else { throw DaemonError(.unsupported, "this kernel has no KSM (/sys/kernel/mm/ksm)") }
        do {
            try KSM().configure(run: run, pagesToScan: pagesToScan, sleepMilliseconds: sleepMilliseconds)
        } catch {
            throw DaemonError(.internal, error.message)
        }
        events.publish(vm: nil, kind: "ksm", "KSM settings changed (run \(run.map(String.init) ?? "-"), pages_to_scan \(pagesToScan.map(String.init) ?? "-"), sleep_millisecs \(sleepMilliseconds.map(String.init) ?? "-"))")
    }

    // MARK: Balloon

    func setBalloon(_ name: String, targetMiB: UInt64) async throws(DaemonError) -> Components.Schemas.Balloon {
        try await serialized(name) { () async throws -> Components.Schemas.Balloon in
            let socket = try self.runningSocket(name)
            let spec = try Self.spec(of: try self.record(name))
            guard spec.hasBalloon else { throw DaemonError(.unsupported, "VM '\(name)' has no balloon (balloon.enabled is false)") }
            guard targetMiB < spec.memoryBytes >> 20 else {
                throw DaemonError(.invalidRequest, "a balloon of \(targetMiB) MiB would take all of the VM's \(spec.memoryBytes >> 20) MiB")
            }
            _ = try await self.control(socket, .setBalloon(targetMiB: targetMiB))
            // An explicit target replaces whatever the automatic policy had taken.
            self.balloonPolicy.forget(name)
            self.events.publish(vm: name, kind: "balloon", "VM \(name): balloon target \(targetMiB) MiB")
            return try await self.balloonReport(name, socket)
        }
    }

    func balloon(_ name: String) async throws(DaemonError) -> Components.Schemas.Balloon {
        try await balloonReport(name, try runningSocket(name))
    }

    func balloonReport(_ name: String, _ socket: String) async throws(DaemonError) -> Components.Schemas.Balloon {
        let monitor = (try? record(name)).flatMap { Self.identity(of: $0) }
        guard case .balloon(let b) = try await control(socket, .balloonStatistics) else {
            throw DaemonError(.monitorFailed, "the monitor answered balloonStatistics with something else")
        }
        var stats: [String: Int64] = [:]
        for m in b.statistics { stats[m.name] = Int64(clamping: m.value) }
        let auto = Int64(clamping: balloonPolicy.amount(name, monitor: monitor))
        return .init(targetMiB: Int64(b.targetPages) / 256, actualMiB: Int64(b.actualPages) / 256, autoTakenMiB: auto,
                     statistics: .init(additionalProperties: stats))
    }

    // MARK: Rate limits and QoS

    /// Changes one device's limits in the spec and, if the VM runs, in its monitor.
    func setRateLimit(_ name: String, _ change: Components.Schemas.RateLimitChange) async throws(DaemonError) -> VMRecord {
        try await serialized(name) { () async throws -> VMRecord in
            let r = try self.record(name)
            var spec = try Self.spec(of: r)
            let device = change.device
            let limits: RateLimits
            if device.hasPrefix("disk") {
                guard let i = Int(device.dropFirst(4)), i < (spec.disks ?? []).count else {
                    throw DaemonError(.invalidRequest, "VM '\(name)' has no \(device)")
                }
                if let v = change.bandwidth { spec.disks?[i].bandwidth = UInt64(v) }
                if let v = change.iops { spec.disks?[i].iops = UInt64(v) }
                if let v = change.burst { spec.disks?[i].burst = UInt64(v) }
                let d = spec.disks?[i]
                limits = RateLimits(bandwidth: Self.bucket(d?.bandwidth, burst: d?.burst), operations: Self.bucket(d?.iops, burst: nil))
            } else {
                guard let i = Int(device.dropFirst(3)), i < (spec.nics ?? []).count else {
                    throw DaemonError(.invalidRequest, "VM '\(name)' has no \(device)")
                }
                if let v = change.rxBandwidth { spec.nics?[i].rxBandwidth = UInt64(v) }
                if let v = change.txBandwidth { spec.nics?[i].txBandwidth = UInt64(v) }
                if let v = change.rxPps { spec.nics?[i].rxPps = UInt64(v) }
                if let v = change.txPps { spec.nics?[i].txPps = UInt64(v) }
                limits = RateLimits()
            }
            if let identity = Self.identity(of: r), identity.isAlive(), let socket = r.apiSocket {
                if device.hasPrefix("disk") {
                    _ = try await self.control(socket, .setRateLimit(device: device, limits: limits))
                } else if let n = spec.nics?[Int(device.dropFirst(3)) ?? 0] {
                    _ = try await self.control(socket, .setRateLimit(device: device, limits: RateLimits(
                        bandwidth: Self.bucket(n.rxBandwidth, burst: nil), operations: Self.bucket(n.rxPps, burst: nil), direction: .receive)))
                    _ = try await self.control(socket, .setRateLimit(device: device, limits: RateLimits(
                        bandwidth: Self.bucket(n.txBandwidth, burst: nil), operations: Self.bucket(n.txPps, burst: nil), direction: .transmit)))
                }
            }
            let json = Self.encode(spec)
            let record: VMRecord
            do { record = try self.store.updateVM(name) { $0.spec = json } } catch { throw DaemonError.from(error) }
            self.events.publish(vm: name, kind: "rate-limit", "VM \(name): \(device) limits changed")
            return record
        }
    }

    static func bucket(_ rate: UInt64?, burst: UInt64?) -> TokenBucket? {
        guard let rate, rate > 0 else { return nil }
        return TokenBucket.rate(rate, burst: burst ?? 0)
    }

    /// Changes the QoS part of the spec and applies it to the VM's cgroup.
    func setQoS(_ name: String, _ qos: Components.Schemas.QoS) async throws(DaemonError) -> VMRecord {
        try await serialized(name) { () async throws -> VMRecord in
            let r = try self.record(name)
            var spec = try Self.spec(of: r)
            let new = QoSSpec(class: qos._class.flatMap { QoSClass(rawValue: $0.rawValue) }, cpuLimit: qos.cpuLimit,
                              memoryLimit: qos.memoryLimit, cpuset: qos.cpuset)
            do { try new.validate() } catch let e as SpecError { throw DaemonError(.invalidRequest, e.message) } catch { throw DaemonError(.invalidRequest, "\(error)") }
            spec.qos = new
            if let identity = Self.identity(of: r), identity.isAlive(), let cgroups = self.cgroups {
                do { try cgroups.apply(vm: name, limits: self.limits(spec)) } catch { throw DaemonError(.internal, "\(error)") }
            }
            let json = Self.encode(spec)
            let record: VMRecord
            do { record = try self.store.updateVM(name) { $0.spec = json } } catch { throw DaemonError.from(error) }
            self.events.publish(vm: name, kind: "qos", "VM \(name): QoS class \(spec.qosClass.rawValue)")
            return record
        }
    }

    // MARK: Console log

    /// The last `maxBytes` of the console output (PATH.1 then PATH), or what came after
    /// `after`. Positions count every byte ever written to PATH.1 + PATH as one stream. A
    /// jailed VM's stream starts with its earlier runs' output (the archive).
    func consoleLog(_ name: String, maxBytes: Int, after: Int64?) throws(DaemonError) -> ([UInt8], Int64) {
        let r = try record(name)
        let files = files(name, jailDirectory: r.jailDirectory)
        let path = files.consoleLog
        let old = (files.jailDirectory != nil ? readFile(files.consoleArchive) : []) + readFile(path + ".1")
        let current = readFile(path)
        let all = old + current
        let end = Int64(all.count)
        var start = max(0, all.count - max(1, min(maxBytes, 4 << 20)))
        if let after { start = Int(min(max(after, 0), end)) }
        let slice = Array(all[start..<min(all.count, start + max(1, min(maxBytes, 4 << 20)))])
        return (slice, Int64(start + slice.count))
    }

    private func readFile(_ path: String) -> [UInt8] {
        // An empty file is not handed to FileManager, which leaks its buffer for one (SmallFile).
        guard fileSize(path) > 0, let data = FileManager.default.contents(atPath: path) else { return [] }
        return [UInt8](data.suffix(8 << 20))
    }
}
