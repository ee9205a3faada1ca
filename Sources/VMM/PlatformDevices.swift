import ArchX86
import DeviceModel
import LegacyDevices
import SystemExtras
import Virtio

/// The PC devices every Skiff VM has, placed on the machine's port bus: COM1, the i8042,
/// the CMOS RTC, fw_cfg, the debug-exit port, the POST port, ACPI power management and
/// the 0xCF9 reset register.
final class PlatformDevices: Sendable {
    let serial: Serial16550
    let i8042: I8042
    let rtc: CMOSRTC
    let fwCfg: FwCfg
    let postCode: PostCodePort
    let resetControl: PCIResetControl
    let virtio: VirtioDevices
    /// Generic Event Device interrupt announcing a new VM generation ID.
    let generationEvent: any InterruptLine
    /// Generic Event Device interrupt of the ACPI power button.
    let powerButtonEvent: any InterruptLine

    private init(serial: Serial16550, i8042: I8042, rtc: CMOSRTC, fwCfg: FwCfg, postCode: PostCodePort, resetControl: PCIResetControl,
                 virtio: VirtioDevices, generationEvent: any InterruptLine, powerButtonEvent: any InterruptLine) {
        self.serial = serial
        self.i8042 = i8042
        self.rtc = rtc
        self.fwCfg = fwCfg
        self.postCode = postCode
        self.resetControl = resetControl
        self.virtio = virtio
        self.generationEvent = generationEvent
        self.powerButtonEvent = powerButtonEvent
    }

    static func install(on machine: Machine, console: any ConsoleOutput, configuration: VMConfiguration,
                        rateLimiters: DeviceRateLimiters) throws(VMError) -> PlatformDevices {
        let control = machine.control
        let serial = Serial16550(interrupt: machine.interruptLine(gsi: Layout.com1IRQ), output: console)
        let i8042 = I8042(interrupt: machine.interruptLine(gsi: Layout.i8042IRQ), machine: control)
        let rtc = CMOSRTC(memorySize: configuration.memorySize, lowMemoryEnd: Layout.mmioHoleStart, cpuCount: configuration.vcpuCount)
        let fwCfg = FwCfg(ramSize: configuration.memorySize, cpuCount: UInt16(clamping: configuration.vcpuCount))
        let postCode = PostCodePort()
        let pio = machine.pio
        do {
            try pio.insert(serial, base: UInt64(Layout.com1Port), length: Serial16550.portRange)
            try pio.insert(i8042, base: UInt64(Layout.i8042DataPort), length: UInt64(Layout.i8042CommandPort - Layout.i8042DataPort) + 1)
            try pio.insert(rtc, base: UInt64(Layout.rtcPort), length: 2)
            try pio.insert(fwCfg, base: UInt64(Layout.fwCfgSelectorPort), length: 2)
            try pio.insert(DebugExit(machine: control), base: UInt64(Layout.debugExitPort), length: 4)
            try pio.insert(postCode, base: UInt64(Layout.postCodePort), length: 1)
            try pio.insert(ACPIPowerManagement(machine: control, s5SleepType: Layout.acpiS5SleepType, resetValue: Layout.acpiResetValue),
                           base: UInt64(Layout.acpiSleepControlPort), length: UInt64(Layout.acpiResetPort - Layout.acpiSleepControlPort) + 1)
        } catch {
            throw VMError("cannot place platform devices: \(error)")
        }
        // 0xCF9 shares the 0xCF8 dword with the PCI address register: narrow accesses reach it.
        let resetControl = PCIResetControl(machine: control)
        let virtio = try VirtioDevices(machine: machine, narrowConfigAccesses: OffsetDevice(resetControl, offset: 1))
        for spec in configuration.devices { try virtio.add(spec, machine: machine, output: console, rateLimiters: rateLimiters) }
        return PlatformDevices(serial: serial, i8042: i8042, rtc: rtc, fwCfg: fwCfg, postCode: postCode, resetControl: resetControl, virtio: virtio,
                               generationEvent: machine.interruptLine(gsi: Layout.generationIDEventGSI),
                               powerButtonEvent: machine.interruptLine(gsi: Layout.powerButtonEventGSI))
    }

    /// Host input for the console: the virtio console if there is one, else the UART.
    /// Returns how many bytes the device took.
    func sendConsoleInput(_ bytes: UnsafeRawBufferPointer) -> Int {
        if let console = virtio.console { return unsafe console.enqueueInput(bytes) }
        return unsafe serial.enqueueInput(bytes)
    }
}
