import BinaryCoding

// MARK: Helpers

func encode<T: Encodable>(_ value: T) throws(BinaryCodingError) -> [UInt8] {
    try BinaryEncoder().encode(value)
}

func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8], limits: BinaryDecoder.Limits = .default) throws(BinaryCodingError) -> T {
    try BinaryDecoder(limits: limits).decode(type, from: bytes)
}

func roundTrip<T: Codable>(_ value: T) throws(BinaryCodingError) -> T {
    try decode(T.self, from: encode(value))
}

/// The error decoding `bytes` as a `T` throws, or nil if it decodes.
func decodingError<T: Decodable>(_ type: T.Type, _ bytes: [UInt8], limits: BinaryDecoder.Limits = .default) -> BinaryCodingError? {
    do {
        _ = try decode(type, from: bytes, limits: limits)
        return nil
    } catch {
        return error
    }
}

/// A varint, written independently of the encoder.
func varint(_ value: UInt64) -> [UInt8] {
    var bytes: [UInt8] = []
    var rest = value
    while rest >= 0x80 {
        bytes.append(UInt8(rest & 0x7F) | 0x80)
        rest >>= 7
    }
    return bytes + [UInt8(rest)]
}

/// Arrays nested `depth` deep, each holding the next one (the innermost is empty).
struct Tree: Codable {
    var children: [Tree]
    init(depth: Int) { children = depth > 1 ? [Tree(depth: depth - 1)] : [] }
    init(from decoder: any Decoder) throws { children = try decoder.singleValueContainer().decode([Tree].self) }
    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(children)
    }

    /// The encoding of `Tree(depth:)`, written by hand.
    static func bytes(depth: Int) -> [UInt8] {
        Array([[UInt8]](repeating: [0x0A, 0x01], count: depth - 1).joined()) + [0x0A, 0x00]
    }
}

/// The error encoding `value` throws, or nil if it encodes.
func encodingError<T: Encodable>(_ value: T, encoder: BinaryEncoder = BinaryEncoder()) -> BinaryCodingError? {
    do {
        _ = try encoder.encode(value)
        return nil
    } catch {
        return error
    }
}

extension BinaryCodingError {
    var isTruncated: Bool { if case .truncated = self { true } else { false } }
    var isTypeMismatch: Bool { if case .typeMismatch = self { true } else { false } }
    var isInvalidValue: Bool { if case .invalidValue = self { true } else { false } }
    func isLimitExceeded(_ limit: Limit) -> Bool {
        if case .limitExceeded(_, limit, _, _, _) = self { true } else { false }
    }
    var isDuplicateKey: Bool { if case .duplicateKey = self { true } else { false } }
}

// MARK: State-shaped types

// Shaped like Skiff's saved state: KVM structs kept as byte images, small structs of
// registers, arrays of both, optionals and enums with associated values.

struct MSR: Codable, Equatable {
    var index: UInt32
    var value: UInt64
}

struct CPUIDLeaf: Codable, Equatable {
    var function: UInt32
    var index: UInt32
    var flags: UInt32
    var eax: UInt32
    var ebx: UInt32
    var ecx: UInt32
    var edx: UInt32
}

struct VCPUState: Codable, Equatable {
    var id: UInt32
    var registers: [UInt8]
    var specialRegisters: [UInt8]
    var xsave: [UInt8]
    var lapic: [UInt8]
    var events: [UInt8]
    var mpState: UInt32
    var msrs: [MSR]
    var cpuid: [CPUIDLeaf]
    var tscKHz: UInt32
}

struct PlatformState: Codable, Equatable {
    var irqChips: [[UInt8]]
    var pit: [UInt8]
    var clockNanoseconds: UInt64
    var clockFlags: UInt32
}

struct QueueState: Codable, Equatable {
    var size: UInt16
    var ready: Bool
    var descriptorTable: UInt64
    var availableRing: UInt64
    var usedRing: UInt64
    var nextAvailable: UInt16
    var nextUsed: UInt16
    var msixVector: UInt16?
}

enum DeviceState: Codable, Equatable {
    case serial(divisor: UInt16, lineControl: UInt8, pending: [UInt8])
    case block(queues: [QueueState], path: String, readOnly: Bool)
    case rtc(cmos: [UInt8], offsetSeconds: Int64)
    case disconnected
}

struct MachineSnapshot: Codable, Equatable {
    var version: Int
    var name: String
    var vcpus: [VCPUState]
    var platform: PlatformState
    var devices: [DeviceState]
    var memorySizes: [UInt64]
    var note: String?
}

/// SplitMix64: a small seeded generator, so tests see the same "random" data every run.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension MachineSnapshot {
    /// A deterministic snapshot: `vcpuCount` vCPUs with `xsaveSize`-byte XSAVE areas and
    /// 1 KiB LAPIC pages, a few devices.
    static func sample(vcpuCount: Int = 2, xsaveSize: Int = 4096, msrCount: Int = 20, cpuidCount: Int = 12) -> MachineSnapshot {
        var random = SeededGenerator(seed: 0x5EED)
        func bytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &random) } }
        let vcpus = (0..<vcpuCount).map { id in
            VCPUState(
                id: UInt32(id),
                registers: bytes(144),
                specialRegisters: bytes(312),
                xsave: bytes(xsaveSize),
                lapic: bytes(1024),
                events: bytes(64),
                mpState: 0,
                msrs: (0..<msrCount).map { MSR(index: 0xC000_0080 + UInt32($0), value: random.next()) },
                cpuid: (0..<cpuidCount).map {
                    CPUIDLeaf(function: UInt32($0), index: 0, flags: 1, eax: UInt32(truncatingIfNeeded: random.next()),
                              ebx: 0x756E_6547, ecx: UInt32(truncatingIfNeeded: random.next()), edx: 0xFFFF_FFFF)
                },
                tscKHz: 2_995_200)
        }
        let queue = QueueState(size: 256, ready: true, descriptorTable: 0x1_0000, availableRing: 0x1_1000, usedRing: 0x1_2000,
                               nextAvailable: 17, nextUsed: 16, msixVector: 1)
        var idleQueue = queue
        idleQueue.ready = false
        idleQueue.msixVector = nil
        return MachineSnapshot(
            version: 3,
            name: "guest-é",
            vcpus: vcpus,
            platform: PlatformState(irqChips: [bytes(520), bytes(520), bytes(520)], pit: bytes(112),
                                    clockNanoseconds: 123_456_789_012, clockFlags: 2),
            devices: [
                .serial(divisor: 1, lineControl: 3, pending: Array("login: ".utf8)),
                .block(queues: [queue, idleQueue], path: "/var/lib/skiff/disk.qcow2", readOnly: false),
                .rtc(cmos: bytes(128), offsetSeconds: -3600),
                .disconnected,
            ],
            memorySizes: [0xC000_0000, 0x4000_0000],
            note: nil)
    }
}
