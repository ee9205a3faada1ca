import Testing
@testable import ArchX86

/// The stub at F000:FFF0 that Linux jumps to when it reboots "through the BIOS".
struct ResetVectorTests {
    @Test func stubWritesTheFADTResetRegisterThenPulsesTheI8042AndHalts() {
        let code = ResetVector.code()
        #expect(ResetVector.address == 0xffff0)
        // It must end below 1 MiB (real-mode F000:FFF0 + 16).
        #expect(code.count <= 16)
        #expect(code == [0xb0, 0x01, 0xba, 0x04, 0x06, 0xee, 0xb0, 0xfe, 0xe6, 0x64, 0xfa, 0xf4, 0xeb, 0xfc])
        // The same register and value the FADT names.
        let fadt = FADT.build(dsdtAddress: 0xe1000, bootArchitecture: FADT.bootArchitecture(has8042: true))
        let resetRegister = Array(fadt[FADT.resetRegisterOffset..<(FADT.resetRegisterOffset + 12)])
        #expect(resetRegister[0] == 1)  // system I/O space
        #expect(UInt16(resetRegister[4]) | UInt16(resetRegister[5]) << 8 == UInt16(code[3]) | UInt16(code[4]) << 8)
        #expect(fadt[FADT.resetValueOffset] == code[1])
        // The jump goes back to cli (rel8 -4 from the end).
        #expect(Int8(bitPattern: code[13]) == -4)
    }

    /// The platform is hardware-reduced, which is what makes Linux try EFI, then the BIOS, first.
    @Test func fadtIsHardwareReducedWithAResetRegister() {
        let fadt = FADT.build(dsdtAddress: 0xe1000, bootArchitecture: FADT.bootArchitecture(has8042: true))
        let flags = UInt32(fadt[FADT.flagsOffset]) | UInt32(fadt[FADT.flagsOffset + 1]) << 8
            | UInt32(fadt[FADT.flagsOffset + 2]) << 16 | UInt32(fadt[FADT.flagsOffset + 3]) << 24
        #expect(flags & FADTFlags.hardwareReducedACPI.rawValue != 0)
        #expect(flags & FADTFlags.resetRegisterSupported.rawValue != 0)
    }
}
