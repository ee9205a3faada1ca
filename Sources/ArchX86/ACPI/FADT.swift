/// FADT `Flags` (ACPI 6.5, table 5.10).
public struct FADTFlags: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// WBINVD works as specified (required of all ACPI 2.0+ x86 platforms).
    public static let wbinvd = FADTFlags(rawValue: 1 << 0)
    /// No fixed-hardware power button: it is a control-method device or absent.
    public static let powerButtonNotFixed = FADTFlags(rawValue: 1 << 4)
    /// No fixed-hardware sleep button: it is a control-method device or absent.
    public static let sleepButtonNotFixed = FADTFlags(rawValue: 1 << 5)
    /// PM timer is 32 bits wide.
    public static let timerValueExtended = FADTFlags(rawValue: 1 << 8)
    /// RESET_REG describes a working reset register.
    public static let resetRegisterSupported = FADTFlags(rawValue: 1 << 10)
    /// Hardware-reduced ACPI: no fixed hardware (PM1 blocks, PM timer, GPE blocks, SCI).
    public static let hardwareReducedACPI = FADTFlags(rawValue: 1 << 20)
}

/// FADT `IAPC_BOOT_ARCH` (ACPI 6.5, table 5.11).
public struct IAPCBootArchitecture: OptionSet, Sendable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// The platform has user-visible ISA/LPC devices (here: COM1, the i8042 and the RTC).
    public static let legacyDevices = IAPCBootArchitecture(rawValue: 1 << 0)
    /// An 8042 keyboard controller is present.
    public static let has8042 = IAPCBootArchitecture(rawValue: 1 << 1)
    /// No VGA hardware: OSPM must not probe VGA ranges.
    public static let vgaNotPresent = IAPCBootArchitecture(rawValue: 1 << 2)
    /// MSI must not be enabled.
    public static let msiNotSupported = IAPCBootArchitecture(rawValue: 1 << 3)
    /// OSPM must not enable PCIe ASPM.
    public static let pcieASPMControls = IAPCBootArchitecture(rawValue: 1 << 4)
    /// No CMOS RTC at the legacy ports.
    public static let cmosRTCNotPresent = IAPCBootArchitecture(rawValue: 1 << 5)
}

/// The Fixed ACPI Description Table, revision 6 (ACPI 6.5, 5.2.9), 276 bytes.
///
/// Skiff's platform is hardware-reduced: no PM1/GPE blocks, no PM timer, no SCI. Power-off and
/// reset go through the sleep control/status registers and the reset register, all 8-bit I/O ports
/// from `Layout`.
public enum FADT {
    public static let size = 276
    public static let revision: UInt8 = 6
    /// FADT minor version: ACPI 6.5.
    public static let minorRevision: UInt8 = 5

    // Field offsets used by tests and readers.
    public static let dsdtOffset = 40
    public static let iapcBootArchitectureOffset = 109
    public static let flagsOffset = 112
    public static let resetRegisterOffset = 116
    public static let resetValueOffset = 128
    public static let minorRevisionOffset = 131
    public static let xDSDTOffset = 140
    public static let sleepControlRegisterOffset = 244
    public static let sleepStatusRegisterOffset = 256
    public static let hypervisorVendorIdentityOffset = 268

    /// The flags Skiff sets.
    public static let defaultFlags: FADTFlags = [
        .wbinvd, .powerButtonNotFixed, .sleepButtonNotFixed, .resetRegisterSupported, .hardwareReducedACPI,
    ]

    /// Boot architecture flags for a platform with or without the i8042.
    public static func bootArchitecture(has8042: Bool) -> IAPCBootArchitecture {
        var flags: IAPCBootArchitecture = [.legacyDevices, .vgaNotPresent, .pcieASPMControls]
        if has8042 { flags.insert(.has8042) }
        return flags
    }

    /// Builds the FADT pointing at the DSDT.
    public static func build(dsdtAddress: UInt64, bootArchitecture: IAPCBootArchitecture, flags: FADTFlags = defaultFlags) -> [UInt8] {
        var table = ACPITableHeader.make(signature: "FACP", revision: revision)
        table.appendLittleEndian(UInt32(0))  // 36 FIRMWARE_CTRL: no FACS (allowed when hardware-reduced)
        table.appendLittleEndian(UInt32(truncatingIfNeeded: dsdtAddress < (1 << 32) ? dsdtAddress : 0))  // 40 DSDT
        table.append(0)  // 44 reserved
        table.append(0)  // 45 Preferred_PM_Profile: unspecified
        table.appendLittleEndian(UInt16(0))  // 46 SCI_INT: none (hardware-reduced)
        table.appendLittleEndian(UInt32(0))  // 48 SMI_CMD: no SMM
        table += [0, 0, 0, 0]  // 52 ACPI_ENABLE, ACPI_DISABLE, S4BIOS_REQ, PSTATE_CNT
        for _ in 0..<8 { table.appendLittleEndian(UInt32(0)) }  // 56 PM1a/b EVT, PM1a/b CNT, PM2 CNT, PM TMR, GPE0, GPE1
        table += [0, 0, 0, 0, 0, 0, 0, 0]  // 88 PM1_EVT_LEN … GPE1_BASE, CST_CNT
        table.appendLittleEndian(UInt16(0))  // 96 P_LVL2_LAT
        table.appendLittleEndian(UInt16(0))  // 98 P_LVL3_LAT
        table.appendLittleEndian(UInt16(0))  // 100 FLUSH_SIZE
        table.appendLittleEndian(UInt16(0))  // 102 FLUSH_STRIDE
        table += [0, 0, 0, 0, 0]  // 104 DUTY_OFFSET, DUTY_WIDTH, DAY_ALRM, MON_ALRM, CENTURY
        table.appendLittleEndian(bootArchitecture.rawValue)  // 109 IAPC_BOOT_ARCH
        table.append(0)  // 111 reserved
        table.appendLittleEndian(flags.rawValue)  // 112 Flags
        table += GenericAddress.ioPort8(Layout.acpiResetPort).encoded  // 116 RESET_REG
        table.append(Layout.acpiResetValue)  // 128 RESET_VALUE
        table.appendLittleEndian(UInt16(0))  // 129 ARM_BOOT_ARCH
        table.append(minorRevision)  // 131 FADT Minor Version
        table.appendLittleEndian(UInt64(0))  // 132 X_FIRMWARE_CTRL
        table.appendLittleEndian(dsdtAddress)  // 140 X_DSDT
        for _ in 0..<8 { table += GenericAddress.notPresent.encoded }  // 148 X_PM1a_EVT_BLK … X_GPE1_BLK
        table += GenericAddress.ioPort8(Layout.acpiSleepControlPort).encoded  // 244 SLEEP_CONTROL_REG
        table += GenericAddress.ioPort8(Layout.acpiSleepStatusPort).encoded  // 256 SLEEP_STATUS_REG
        table.appendFixedASCII("SKIFFVMM", width: 8)  // 268 Hypervisor Vendor Identity
        ACPITableHeader.finish(&table)
        return table
    }
}
