#if canImport(Glibc)
import Glibc
#endif
import CSkiffSystem
import GuestMemory
import SystemExtras
import Virtio
import VirtioNet

/// A non-blocking datagram socket pair standing in for a TAP: the engine owns one end, the
/// harness plays the host network on the other. Closed on deinit.
final class FramePipe {
    let engineFD: Int32
    let hostFD: Int32

    init() throws(FuzzInvariantViolation) {
        var fds: [Int32] = [-1, -1]
        let kind = Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        guard unsafe socketpair(AF_UNIX, kind, 0, &fds) == 0 else { throw FuzzInvariantViolation("socketpair failed: errno \(errno)") }
        engineFD = fds[0]
        hostFD = fds[1]
        // Small buffers so back-pressure (EAGAIN, pending frames) is reachable.
        var small: Int32 = 4096
        _ = unsafe setsockopt(hostFD, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
        _ = unsafe setsockopt(engineFD, SOL_SOCKET, SO_SNDBUF, &small, socklen_t(MemoryLayout<Int32>.size))
    }

    deinit {
        close(engineFD)
        close(hostFD)
    }

    /// Every frame the engine sent, drained.
    func drain() -> [Int] {
        var sizes: [Int] = []
        var buffer = [UInt8](repeating: 0, count: VirtioNetHeader.size + VirtioNetHeader.maxFrameSize + 16)
        while true {
            let n = unsafe buffer.withUnsafeMutableBytes { unsafe recv(hostFD, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n < 0 { return sizes }
            sizes.append(n)
        }
    }
}

/// virtio-net (`VirtioNetEngine`): transmit chains of any shape and header from the guest, and
/// frames of any size and header from the host network into the guest's receive buffers, with
/// or without mergeable receive buffers.
///
/// Checks: every frame sent to the host has a header and at most the largest frame; nothing is
/// sent that the guest did not publish; every used receive element fits the chain it completes.
public enum VirtioNetHarness {
    nonisolated(unsafe) static var ram: FuzzGuestRAM?

    public static func run(_ data: [UInt8]) throws(FuzzInvariantViolation) {
        let ram = unsafe Self.ram ?? FuzzGuestRAM()
        unsafe Self.ram = ram
        ram.clear()
        let memory = ram.memory
        var input = FuzzInput(data)
        let flags = input.u8()
        var features = VirtioFeature.version1
        if flags & 1 != 0 { features |= VirtioNetFeature.mergeableRxBuffers }
        if flags & 2 != 0 { features |= VirtioFeature.indirectDescriptors }
        if flags & 4 != 0 { features |= VirtioFeature.eventIndex }
        if flags & 8 != 0 { features |= VirtioNetFeature.offloads }
        var driver = FuzzDriver(memory: memory, queues: 2)
        let interrupt = FuzzInterrupt()
        let pipe = try FramePipe()
        let timer: TimerFD
        do {
            timer = try TimerFD()
        } catch {
            throw FuzzInvariantViolation("timerfd: \(error)")
        }
        let activation = try fuzzActivation(memory: memory, driver: driver, queues: 2, features: features, interrupt: interrupt)
        let engine = VirtioNetEngine(activation: activation, backendFD: pipe.engineFD, counters: VirtioNetCounters(), timer: timer)
        var sent = 0

        var steps = 0
        while !input.isAtEnd && steps < 96 {
            steps += 1
            switch input.u8() % 8 {
            case 0:
                ram.scribble(&input, sparing: FuzzDriver.isUsedRing)
            case 1:
                // The guest transmits: a header and a frame, in one or several readable buffers.
                let parts = FuzzDriver.randomParts(&input, maxCount: 4).map { FuzzDriver.Part(address: $0.address, length: $0.length, writable: input.u8() == 0) }
                driver.publish(queue: VirtioNet.txQueue, parts: parts, contents: input.bytes(Int(input.u16() % 4096)),
                               indirect: features & VirtioFeature.indirectDescriptors != 0 && input.bool(), input: &input)
            case 2:
                // The guest adds a receive buffer.
                let parts = FuzzDriver.randomParts(&input, maxCount: 3).map { FuzzDriver.Part(address: $0.address, length: $0.length, writable: input.u8() != 0) }
                driver.publish(queue: VirtioNet.rxQueue, parts: parts, contents: [], indirect: false, input: &input)
            case 3:
                // The host network sends a frame (header included) of any size up to past the limit.
                let length = input.bool() ? Int(input.u16()) + VirtioNetHeader.size : input.below(200)
                var frame = input.bytes(min(length, 256))
                frame += [UInt8](repeating: 0x5a, count: max(0, length - frame.count))
                _ = unsafe frame.withUnsafeBytes { unsafe send(pipe.hostFD, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            case 4:
                engine.handle(.queue(VirtioNet.txQueue), events: 0)
            case 5:
                engine.handle(.queue(VirtioNet.rxQueue), events: 0)
            case 6:
                engine.handle(.backend(0), events: UInt32(EPOLLIN.rawValue) | (input.bool() ? UInt32(EPOLLOUT.rawValue) : 0))
            default:
                let frames = pipe.drain()
                sent += frames.count
                for n in frames {
                    try require(n >= VirtioNetHeader.size && n <= VirtioNetHeader.size + VirtioNetHeader.maxFrameSize, "sent a frame of \(n) bytes")
                }
            }
        }
        engine.handle(.queue(VirtioNet.txQueue), events: 0)
        let frames = pipe.drain()
        sent += frames.count
        for n in frames {
            try require(n >= VirtioNetHeader.size && n <= VirtioNetHeader.size + VirtioNetHeader.maxFrameSize, "sent a frame of \(n) bytes")
        }
        // One frame per completed chain, plus at most one the engine holds while the host is full.
        let completed = Int(driver.usedIndex(VirtioNet.txQueue))
        try require(driver.usedRingsExposed || sent <= completed + 1, "sent \(sent) frames for \(completed) completed transmit chains")
        // Used receive elements name a descriptor of the table and hold at most one frame
        // (unless the guest handed out its own used ring as a buffer).
        guard !driver.usedRingsExposed else { return }
        let used = driver.usedIndex(VirtioNet.rxQueue)
        for slot in 0..<min(used, FuzzDriver.queueSize) {
            let element = driver.usedElement(VirtioNet.rxQueue, slot)
            try require(element.id < UInt32(FuzzDriver.queueSize), "used id \(element.id)")
            try require(element.length <= UInt32(VirtioNetHeader.size + VirtioNetHeader.maxFrameSize), "used length \(element.length)")
        }
    }
}
