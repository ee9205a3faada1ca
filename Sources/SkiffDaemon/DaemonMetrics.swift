import ControlProtocol
import Foundation
import HostProcess
import HostResources
import Metrics
import Prometheus
import SkiffStore

/// Prometheus metrics: the API's request counts and latency histograms (swift-metrics through
/// Hummingbird's MetricsMiddleware), and at each scrape the host's and each running VM's
/// figures (cgroup CPU time, RSS, balloon, KSM, and the monitor's own counters).
public final class DaemonMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry

    public init() {
        registry = PrometheusCollectorRegistry()
    }

    /// Makes swift-metrics report into this registry (once per process).
    public func bootstrap() {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [.microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
                                                     .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
                                                     .milliseconds(500), .seconds(1), .seconds(5)]
        MetricsSystem.bootstrap(factory)
    }

    /// A metric name from a monitor counter name: "disk0.read-bytes" → "disk0_read_bytes".
    static func sanitize(_ s: String) -> String {
        String(s.map { $0.isLetter || $0.isNumber ? $0 : "_" })
    }
}

extension Supervisor {
    /// Samples everything and renders the exposition text.
    public func metricsText() async -> String {
        let r = metrics.registry
        let ksm = KSM().status()
        if let mem = HostMemory.meminfo() {
            r.makeGauge(name: "skiff_host_memory_bytes").set(Double(mem.total))
            r.makeGauge(name: "skiff_host_memory_available_bytes").set(Double(mem.available))
        }
        r.makeGauge(name: "skiff_host_cpus").set(Double(HostMemory.cpus))
        if let p = HostMemory.pressure() { r.makeGauge(name: "skiff_host_memory_pressure_some10").set(p.some10) }
        r.makeGauge(name: "skiff_host_ksm_pages_sharing").set(Double(ksm.pagesSharing))
        r.makeGauge(name: "skiff_host_ksm_pages_shared").set(Double(ksm.pagesShared))
        r.makeGauge(name: "skiff_host_ksm_saved_bytes").set(Double(ksm.savedBytes))
        let records = (try? store.allVMs()) ?? []
        var running = 0
        await withTaskGroup(of: Void.self) { group in
            for record in records {
                guard let identity = Self.identity(of: record), identity.isAlive() else { continue }
                running += 1
                group.addTask { await self.sampleVM(record, identity) }
            }
        }
        r.makeGauge(name: "skiff_vms").set(Double(records.count))
        r.makeGauge(name: "skiff_vms_running").set(Double(running))
        return r.emitToString()
    }

    private func sampleVM(_ record: VMRecord, _ identity: ProcessIdentity) async {
        let r = metrics.registry
        let vm = [("vm", record.name)]
        if let usage = cgroups?.usage(vm: record.name) {
            r.makeGauge(name: "skiff_vm_cpu_seconds", labels: vm).set(Double(usage.cpuNanoseconds) / 1e9)
            r.makeGauge(name: "skiff_vm_cgroup_memory_bytes", labels: vm).set(Double(usage.memoryBytes))
        }
        // A jailed VM's memory is its monitor's, not its jailer's.
        let pid = record.monitorPid.map { Int32(truncatingIfNeeded: $0) } ?? identity.pid
        if let m = HostMemory.process(pid: pid) {
            r.makeGauge(name: "skiff_vm_rss_bytes", labels: vm).set(Double(m.rss))
            if let pss = m.pss { r.makeGauge(name: "skiff_vm_pss_bytes", labels: vm).set(Double(pss)) }
        }
        if let k = KSM.process(pid: pid) {
            r.makeGauge(name: "skiff_vm_ksm_merging_pages", labels: vm).set(Double(k.mergingPages))
        }
        guard let socket = record.apiSocket else { return }
        if case .metrics(let counters)? = try? await control(socket, .metrics, timeout: 2) {
            for c in counters {
                let parts = c.name.split(separator: ".", maxSplits: 1).map(String.init)
                if parts.count == 2, parts[0].hasPrefix("disk") || parts[0].hasPrefix("net") {
                    r.makeGauge(name: "skiff_vm_device_\(DaemonMetrics.sanitize(parts[1]))", labels: vm + [("device", parts[0])]).set(Double(c.value))
                } else {
                    r.makeGauge(name: "skiff_vm_monitor_counter", labels: vm + [("counter", c.name)]).set(Double(c.value))
                }
            }
        }
        if case .balloon(let b)? = try? await control(socket, .balloonStatistics, timeout: 2) {
            r.makeGauge(name: "skiff_vm_balloon_bytes", labels: vm).set(Double(b.actualPages) * 4096)
        }
    }
}
