import ControlProtocol
import Foundation
import HostResources
import SkiffSpec
import SkiffStore
import Synchronization

/// Automatic ballooning: under host memory pressure (PSI some avg10 above `pressureHigh`)
/// memory is taken from the VMs with the most idle memory, lowest QoS class first; when the
/// pressure falls below `pressureLow` it is given back, most recently taken first.
final class BalloonPolicy: Sendable {
    /// MiB taken from each VM by the policy (not by users' explicit targets).
    let taken = Mutex<[String: UInt64]>([:])

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

    /// One round of automatic ballooning.
    func balloonRound(pressure: HostMemory.Pressure? = HostMemory.pressure()) async {
        guard let pressure else { return }
        if pressure.some10 > configuration.pressureHigh {
            var candidates: [BalloonPolicy.Candidate] = []
            for r in (try? store.allVMs()) ?? [] {
                guard r.actualState == "running", let socket = r.apiSocket, let spec = try? Self.spec(of: r), spec.hasBalloon,
                      spec.balloon?.auto ?? true,
                      case .balloon(let b)? = try? await control(socket, .balloonStatistics, timeout: 2) else { continue }
                let stats = Dictionary(b.statistics.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
                guard let idle = stats["available-memory"] ?? stats["free-memory"] else { continue }
                candidates.append(.init(name: r.name, qos: spec.qosClass, memoryMiB: spec.memoryBytes >> 20, idleMiB: idle >> 20,
                                        targetMiB: UInt64(b.targetPages) / 256))
            }
            guard let (name, target) = BalloonPolicy.pickReclaim(candidates), let socket = try? runningSocket(name) else { return }
            let before = candidates.first { $0.name == name }?.targetMiB ?? 0
            if (try? await control(socket, .setBalloon(targetMiB: target))) != nil {
                balloonPolicy.taken.withLock { $0[name, default: 0] += target - before }
                events.publish(vm: name, kind: "balloon-reclaim", "memory pressure \(pressure.some10)%: balloon of \(name) inflated to \(target) MiB")
            }
        } else if pressure.some10 < configuration.pressureLow {
            guard let (name, taken) = balloonPolicy.taken.withLock({ $0.first(where: { $0.value > 0 }) }),
                  let socket = try? runningSocket(name),
                  case .balloon(let b)? = try? await control(socket, .balloonStatistics, timeout: 2) else { return }
            let current = UInt64(b.targetPages) / 256
            let step = max(4, taken / 2)
            let target = current > step ? current - step : 0
            if (try? await control(socket, .setBalloon(targetMiB: target))) != nil {
                balloonPolicy.taken.withLock { $0[name] = taken > step ? taken - step : nil }
                events.publish(vm: name, kind: "balloon-return", "memory pressure fell: balloon of \(name) deflated to \(target) MiB")
            }
        }
    }
}
