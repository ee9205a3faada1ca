/// Register offsets and bit masks of the 16550A UART (National Semiconductor PC16550D data sheet).
enum UART {
    /// Register offsets from the UART's base port.
    enum Offset {
        /// RBR (read) / THR (write); DLL when LCR.DLAB is set.
        static let data: UInt64 = 0
        /// IER; DLM when LCR.DLAB is set.
        static let interruptEnable: UInt64 = 1
        /// IIR (read) / FCR (write).
        static let interruptIdentification: UInt64 = 2
        static let lineControl: UInt64 = 3
        static let modemControl: UInt64 = 4
        static let lineStatus: UInt64 = 5
        static let modemStatus: UInt64 = 6
        static let scratch: UInt64 = 7
        /// Number of registers (the size of the device's port range).
        static let count: UInt64 = 8
    }

    /// Interrupt Enable Register bits (only the low four exist on a 16550A).
    enum IER {
        /// ERBFI: received data available (and character timeout).
        static let receivedData: UInt8 = 0x01
        /// ETBEI: transmitter holding register empty.
        static let transmitterEmpty: UInt8 = 0x02
        /// ELSI: receiver line status.
        static let lineStatus: UInt8 = 0x04
        /// EDSSI: modem status.
        static let modemStatus: UInt8 = 0x08
        static let mask: UInt8 = 0x0f
    }

    /// Interrupt Identification Register values (bits 0–3) and the FIFO-enabled bits.
    enum IIR {
        static let noInterruptPending: UInt8 = 0x01
        static let modemStatus: UInt8 = 0x00
        static let transmitterEmpty: UInt8 = 0x02
        static let receivedData: UInt8 = 0x04
        static let lineStatus: UInt8 = 0x06
        static let characterTimeout: UInt8 = 0x0c
        /// Bits 6–7 read 0b11 when the FIFOs are enabled.
        static let fifosEnabled: UInt8 = 0xc0
    }

    /// FIFO Control Register bits.
    enum FCR {
        static let enable: UInt8 = 0x01
        static let resetReceiver: UInt8 = 0x02
        static let resetTransmitter: UInt8 = 0x04
        static let triggerMask: UInt8 = 0xc0
    }

    /// Line Control Register bits.
    enum LCR {
        static let divisorLatchAccess: UInt8 = 0x80
    }

    /// Modem Control Register bits (bits 5–7 are always zero on a 16550A).
    enum MCR {
        static let dtr: UInt8 = 0x01
        static let rts: UInt8 = 0x02
        static let out1: UInt8 = 0x04
        /// On a PC, OUT2 enables the UART's interrupt output onto the ISA IRQ line.
        static let out2: UInt8 = 0x08
        static let loopback: UInt8 = 0x10
        static let mask: UInt8 = 0x1f
    }

    /// Line Status Register bits.
    enum LSR {
        static let dataReady: UInt8 = 0x01
        static let overrunError: UInt8 = 0x02
        static let parityError: UInt8 = 0x04
        static let framingError: UInt8 = 0x08
        static let breakInterrupt: UInt8 = 0x10
        static let transmitterHoldingEmpty: UInt8 = 0x20
        static let transmitterEmpty: UInt8 = 0x40
        /// In FIFO mode: at least one error (parity, framing, break) in the receive FIFO.
        static let fifoError: UInt8 = 0x80
        /// The bits that raise a receiver line status interrupt.
        static let errorBits: UInt8 = overrunError | parityError | framingError | breakInterrupt
    }

    /// Modem Status Register bits.
    enum MSR {
        static let deltaCTS: UInt8 = 0x01
        static let deltaDSR: UInt8 = 0x02
        static let trailingEdgeRI: UInt8 = 0x04
        static let deltaDCD: UInt8 = 0x08
        static let cts: UInt8 = 0x10
        static let dsr: UInt8 = 0x20
        static let ri: UInt8 = 0x40
        static let dcd: UInt8 = 0x80
        static let deltaMask: UInt8 = 0x0f
    }

    /// Receive FIFO depth of a 16550A.
    static let fifoDepth = 16
    /// Divisor latch after reset: 115200 / 12 = 9600 baud.
    static let resetDivisor: UInt16 = 12
}
