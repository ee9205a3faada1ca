import ControlProtocol
import Foundation
import HostProcess
import HostResources
import SkiffSpec
import SkiffStore
import Synchronization

/// Automatic ballooning: under host memory pressure (PSI some avg10 above `pressureHigh`)
/// memory is taken from the VMs with the most idle memory, lowest QoS class first; when the
/// pressure falls below `pressureLow` it is given back, most recently taken first.
final class BalloonPolicy: Sendable {
    /// What the policy took from one VM's monitor (not users' explicit targets).
    struct Taken: Sendable, Equatable {
        var mib: UInt64
        var monitor: ProcessIdentity
        var at: Date
    }

    /// MiB taken from each VM by the policy; kept in the store too, so a restarted daemon
    /// still gives it back.
    let taken = Mutex<[String: Taken]>([:])
    let store: Store

    init(store: Store) {
        self.store = store
        var loaded: [String: Taken] = [:]
        for r in (try? store.balloonTaken()) ?? [] where r.takenMiB > 0 {
            loaded[r.vm] = Taken(mib: UInt64(r.takenMiB), monitor: ProcessIdentity(pid: Int32(clamping: r.pid), startTime: UInt64(clamping: r.pidStartTime)),
                                 at: r.takenAt)
        }
        taken.withLock { $0 = loaded }
    }

    /// MiB the policy holds of `vm`'s balloon while `monitor` runs it (0 for another monitor).
    func amount(_ vm: String, monitor: ProcessIdentity?) -> UInt64 {
        taken.withLock { t in t[vm].flatMap { $0.monitor == monitor ? $0.mib : nil } ?? 0 }
    }

    /// Sets what the policy holds of `vm` (0 forgets it), in memory and in the store.
    func set(_ vm: String, _ mib: UInt64, monitor: ProcessIdentity) {
        let entry = Taken(mib: mib, monitor: monitor, at: Date())
        taken.withLock { $0[vm] = mib > 0 ? entry : nil }
        _ = try? store.setBalloonTaken(BalloonTakenRecord(vm: vm, takenMiB: Int64(clamping: mib), pid: Int64(monitor.pid),
                                                          pidStartTime: Int64(clamping: monitor.startTime), takenAt: entry.at))
    }

    /// Forgets what the policy holds of `vm` (an explicit target replaced it, or its monitor is gone).
    func forget(_ vm: String) {
        let had = taken.withLock { $0.removeValue(forKey: vm) != nil }
        if had { _ = try? store.clearBalloonTaken(vm) }
    }

    /// The VMs the policy holds memory of, most recently taken first.
    func holdings() -> [(String, Taken)] {
        taken.withLock { t in t.sorted { $0.value.at > $1.value.at }.map { ($0.key, $0.value) } }
    }

    /// A candidate for reclaim: its class, idle memory and balloon.
    struct Candidate: Sendable, Equatable {
        var name: String
        var qos: QoSClass
        var memoryMiB: UInt64
        var idleMiB: UInt64
        var targetMiB: UInt64
    }

    /// Which VM gives memory next and how much: the lowest class, then the most idle memory;
    /// a step is a quarter of its idle memory, at most 25 % of its RAM, at least 4 MiB.
    /// A VM whose balloon already holds 75 % of its RAM is passed over for the next one.
    static func pickReclaim(_ candidates: [Candidate]) -> (String, UInt64)? {
        let order: [QoSClass: Int] = [.low: 0, .normal: 1, .high: 2]
        let sorted = candidates.filter { $0.idleMiB >= 16 && $0.targetMiB < $0.memoryMiB * 3 / 4 }.sorted {
            (order[$0.qos] ?? 1, -Int64($0.idleMiB)) < (order[$1.qos] ?? 1, -Int64($1.idleMiB))
        }
        guard let c = sorted.first else { return nil }
        let step = max(4, min(c.idleMiB / 4, c.memoryMiB / 4))
        let target = min(c.targetMiB + step, c.memoryMiB * 3 / 4)
        return (c.name, target)
    }
}

extension Supervisor {
    /// Starts the periodic policies (balloon, KSM) on a background task.
    public func startPolicies() {
        if configuration.manageKSM, KSM().status().available {
            try? configureKSM(run: true, pagesToScan: 1000, sleepMilliseconds: 20)
        }
        guard configuration.autoBalloon else { return }
        Task.detached { [self] in
            while true {
                try? await Task.sleep(for: .milliseconds(Int(configuration.policyInterval * 1000)))
                await balloonRound()
            }
        }
    }

    /// The host's memory pressure where the configuration says to read it.
    func memoryPressure() -> HostMemory.Pressure? {
        if let file = configuration.pressureFile { return HostMemory.pressure(path: file) }
        return HostMemory.pressure()
    }

    /// One round of automatic ballooning.
    func balloonRound(pressure given: HostMemory.Pressure? = nil) async {
        guard let pressure = given ?? memoryPressure() else { return }
        if pressure.some10 > configuration.pressureHigh {
            var candidates: [BalloonPolicy.Candidate] = []
            var monitors: [String: ProcessIdentity] = [:]
            for r in (try? store.allVMs()) ?? [] {
                guard r.actualState == "running", let socket = r.apiSocket, let identity = Self.identity(of: r),
                      let spec = try? Self.spec(of: r), spec.hasBalloon,
                      spec.balloon?.auto ?? true,
                      case .balloon(let b)? = try? await control(socket, .balloonStatistics, timeout: 2) else { continue }
                let stats = Dictionary(b.statistics.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
                guard let idle = stats["available-memory"] ?? stats["free-memory"] else { continue }
                candidates.append(.init(name: r.name, qos: spec.qosClass, memoryMiB: spec.memoryBytes >> 20, idleMiB: idle >> 20,
                                        targetMiB: UInt64(b.targetPages) / 256))
                monitors[r.name] = identity
            }
            guard let (name, target) = BalloonPolicy.pickReclaim(candidates), let monitor = monitors[name] else { return }
            // The VM's queue: an explicit target set meanwhile is not overwritten unseen.
            try? await serialized(name) { () async throws in
                guard let r = try? self.record(name), Self.identity(of: r) == monitor, let socket = r.apiSocket,
                      case .balloon(let b)? = try? await self.control(socket, .balloonStatistics, timeout: 2) else { return }
                let before = UInt64(b.targetPages) / 256
                guard target > before else { return }
                if (try? await self.control(socket, .setBalloon(targetMiB: target))) != nil {
                    self.balloonPolicy.set(name, self.balloonPolicy.amount(name, monitor: monitor) + (target - before), monitor: monitor)
                    self.events.publish(vm: name, kind: "balloon-reclaim",
                                        "memory pressure \(pressure.some10)%: balloon of \(name) inflated to \(target) MiB")
                }
            }
        } else if pressure.some10 < configuration.pressureLow {
            for (name, held) in balloonPolicy.holdings() {
                let done: Bool = (try? await serialized(name) { () async throws -> Bool in
                    // A VM gone, or run by another monitor since: its balloon is not ours any more.
                    guard let r = try? self.record(name), Self.identity(of: r) == held.monitor, held.monitor.isAlive(),
                          let socket = r.apiSocket else {
                        self.balloonPolicy.forget(name)
                        return false
                    }
                    guard case .balloon(let b)? = try? await self.control(socket, .balloonStatistics, timeout: 2) else { return false }
                    let taken = self.balloonPolicy.amount(name, monitor: held.monitor)
                    guard taken > 0 else { return false }
                    let current = UInt64(b.targetPages) / 256
                    let step = min(taken, max(4, taken / 2))
                    let target = current > step ? current - step : 0
                    guard (try? await self.control(socket, .setBalloon(targetMiB: target))) != nil else { return false }
                    self.balloonPolicy.set(name, taken - step, monitor: held.monitor)
                    self.events.publish(vm: name, kind: "balloon-return", "memory pressure fell: balloon of \(name) deflated to \(target) MiB")
                    return true
                }) ?? false
                if done { return }
            }
        }
    }
}
