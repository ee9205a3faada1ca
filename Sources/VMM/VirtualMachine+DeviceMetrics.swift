import VirtioBlock
import Synchronization
import VirtioNet

extension VirtualMachine {
    /// `diskN.*` and `netN.*` counters of the current devices (counted per kind in slot order).
    static func deviceMetrics(_ virtio: VirtioDevices) -> [(name: String, value: UInt64)] {
        var out: [(name: String, value: UInt64)] = []
        var disks = 0
        var nets = 0
        for transport in virtio.transports {
            if let disk = transport.device as? VirtioBlock {
                let c = disk.statistics.counts
                let p = "disk\(disks)."
                out.append((p + "read-bytes", c.bytesRead))
                out.append((p + "write-bytes", c.bytesWritten))
                out.append((p + "read-ops", c.reads))
                out.append((p + "write-ops", c.writes))
                out.append((p + "flushes", c.flushes))
                out.append((p + "errors", c.ioErrors &+ c.unsupported))
                out.append((p + "throttled", c.throttled))
                disks += 1
            } else if let net = transport.device as? VirtioNet {
                let c = net.counters
                let p = "net\(nets)."
                func load(_ a: borrowing Atomic<UInt64>) -> UInt64 { a.load(ordering: .relaxed) }
                out.append((p + "rx-bytes", load(c.rxBytes)))
                out.append((p + "tx-bytes", load(c.txBytes)))
                out.append((p + "rx-frames", load(c.rxFrames)))
                out.append((p + "tx-frames", load(c.txFrames)))
                out.append((p + "rx-dropped", load(c.rxDroppedTooLarge) &+ load(c.rxDroppedMalformed)))
                out.append((p + "tx-dropped", load(c.txDroppedMalformed) &+ load(c.txDroppedAtPause) &+ load(c.txErrors)))
                out.append((p + "rx-throttled", load(c.rxThrottled)))
                out.append((p + "tx-throttled", load(c.txThrottled)))
                nets += 1
            }
        }
        return out
    }
}
