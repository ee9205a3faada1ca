import Foundation
import HostResources
import SkiffSpec

/// What the host offers to VMs: CPUs and RAM times their allocation ratios (RAM less the
/// reserve), and what the defined VMs take of it.
struct Capacity: Sendable, Equatable {
    var hostCPUs: Int
    var hostMemory: UInt64
    var allocatableCPUs: Double
    var allocatableMemory: Double
    var allocatedCPUs: Int
    var allocatedMemory: UInt64
}

extension Supervisor {
    func capacity() -> Capacity {
        let cpus = HostMemory.cpus
        let memory = HostMemory.meminfo()?.total ?? 0
        var allocatedCPUs = 0
        var allocatedMemory: UInt64 = 0
        for r in (try? store.allVMs()) ?? [] {
            guard let spec = try? Self.spec(of: r) else { continue }
            allocatedCPUs += spec.vcpus
            allocatedMemory += spec.memoryBytes
        }
        let usable = memory > configuration.reservedMemory ? memory - configuration.reservedMemory : 0
        return Capacity(hostCPUs: cpus, hostMemory: memory,
                        allocatableCPUs: Double(cpus) * configuration.cpuAllocationRatio,
                        allocatableMemory: Double(usable) * configuration.memoryAllocationRatio,
                        allocatedCPUs: allocatedCPUs, allocatedMemory: allocatedMemory)
    }

    /// Refuses a VM that would take the host past its allocation ratios, saying by how much.
    func admit(_ spec: VMSpec) throws(DaemonError) {
        let c = capacity()
        let cpusAfter = Double(c.allocatedCPUs + spec.vcpus)
        if cpusAfter > c.allocatableCPUs {
            let over = cpusAfter - c.allocatableCPUs
            throw DaemonError(.capacityExceeded, """
                not enough CPU: '\(spec.name)' needs \(spec.vcpus) vCPUs, \(c.allocatedCPUs) of \(format(c.allocatableCPUs)) \
                allocatable vCPUs (\(c.hostCPUs) CPUs x \(format(configuration.cpuAllocationRatio))) are taken: over by \(format(over)) vCPUs
                """)
        }
        let memoryAfter = Double(c.allocatedMemory + spec.memoryBytes)
        if memoryAfter > c.allocatableMemory {
            let over = (memoryAfter - c.allocatableMemory) / 1048576
            throw DaemonError(.capacityExceeded, """
                not enough memory: '\(spec.name)' needs \(spec.memoryBytes >> 20) MiB, \(c.allocatedMemory >> 20) MiB of \
                \(Int(c.allocatableMemory / 1048576)) MiB allocatable ((host RAM - reserve) x \(format(configuration.memoryAllocationRatio))) \
                are taken: over by \(Int(over.rounded(.up))) MiB
                """)
        }
    }

    private func format(_ v: Double) -> String {
        v == v.rounded() ? String(Int(v)) : String(format: "%.2f", v)
    }
}
