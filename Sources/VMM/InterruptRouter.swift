import ArchX86
import KVM
import PCI
import Synchronization
import SystemExtras

/// The VM's GSI routing table: the legacy PIC/IOAPIC pins plus one MSI route per device
/// vector, installed with KVM_SET_GSI_ROUTING whenever a vector's message changes.
final class InterruptRouter: Sendable {
    static let ioapicPins: UInt32 = 24
    private let vm: VirtualMachineFD
    private let state = Mutex<(nextGSI: UInt32, msi: [UInt32: MSIMessage])>((Layout.firstMSIGSI, [:]))

    init(vm: VirtualMachineFD) throws(KVMError) {
        self.vm = vm
        try install([:])
    }

    /// Legacy routes as on a PC with an ACPI interrupt override IRQ0 → GSI 2: GSI 0 (the
    /// PIT) drives PIC pin 0 and IOAPIC pin 2; GSI 2 is the PIC cascade and has no route;
    /// GSIs 1–15 reach both controllers, 16–23 only the IOAPIC.
    static func legacyRoutes() -> [VirtualMachineFD.GSIRoute] {
        var routes: [VirtualMachineFD.GSIRoute] = []
        for gsi in UInt32(0)..<ioapicPins {
            if gsi < 16 && gsi != 2 {
                routes.append(.irqchip(gsi: gsi, chip: gsi < 8 ? 0 : 1, pin: gsi % 8))
            }
            if gsi == 0 {
                routes.append(.irqchip(gsi: 0, chip: 2, pin: 2))
            } else if gsi != 2 {
                routes.append(.irqchip(gsi: gsi, chip: 2, pin: gsi))
            }
        }
        return routes
    }

    private func install(_ msi: [UInt32: MSIMessage]) throws(KVMError) {
        var routes = Self.legacyRoutes()
        for (gsi, m) in msi.sorted(by: { $0.key < $1.key }) {
            routes.append(.msi(gsi: gsi, addressLow: m.addressLow, addressHigh: m.addressHigh, data: m.data))
        }
        try vm.setGSIRouting(routes)
    }

    /// Reserves `count` GSIs for MSI vectors.
    func allocate(_ count: Int) -> [UInt32] {
        state.withLock { s in
            let first = s.nextGSI
            s.nextGSI += UInt32(count)
            return (0..<UInt32(count)).map { first + $0 }
        }
    }

    /// Points `gsi` at `message`, or removes its route.
    func setRoute(gsi: UInt32, message: MSIMessage?) {
        state.withLock { s in
            if s.msi[gsi] == message { return }
            s.msi[gsi] = message
            try? install(s.msi)
        }
    }

    /// The irqfd-backed vectors of one device.
    func vectors(count: Int) throws(VMError) -> MSIXVectors {
        try MSIXVectors(router: self, vm: vm, gsis: allocate(count))
    }
}

/// One device's MSI-X vectors: each is an eventfd registered as a KVM irqfd on its own GSI,
/// so raising a vector from a device thread needs no vCPU exit and no lock on the VM.
final class MSIXVectors: MSIVectorSink, Sendable {
    private let router: InterruptRouter
    private let vm: VirtualMachineFD
    private let gsis: [UInt32]
    private let events: [EventFD]

    init(router: InterruptRouter, vm: VirtualMachineFD, gsis: [UInt32]) throws(VMError) {
        self.router = router
        self.vm = vm
        self.gsis = gsis
        var events: [EventFD] = []
        do {
            for gsi in gsis {
                let e = try EventFD()
                try vm.registerIRQFD(e.rawValue, gsi: gsi)
                events.append(e)
            }
        } catch {
            throw VMError("cannot set up MSI-X vectors: \(error)")
        }
        self.events = events
    }

    func route(vector: Int, message: MSIMessage?) {
        guard vector >= 0, vector < gsis.count else { return }
        router.setRoute(gsi: gsis[vector], message: message)
    }

    func trigger(vector: Int) {
        guard vector >= 0, vector < events.count else { return }
        events[vector].signal()
    }
}
