/// What a VM is: the document `skiff create -f` reads (YAML or JSON) and `POST /vms` takes.
///
/// Every field but `name` and `kernel` is optional; `resolved` fills in the defaults. Decoding
/// refuses unknown fields at every level; `validate()` checks values.
public struct VMSpec: Codable, Sendable, Equatable {
    public var name: String
    public var cpus: Int?
    /// Guest RAM, e.g. "256M" (see `SpecSize`).
    public var memory: String?
    public var cpuTemplate: CPUTemplateName?
    public var kernel: String
    public var initrd: String?
    public var cmdline: String?
    public var disks: [DiskSpec]?
    public var nics: [NICSpec]?
    public var vsock: VsockSpec?
    public var balloon: BalloonSpec?
    public var qos: QoSSpec?
    public var restart: RestartPolicy?
    /// Guest RAM may be merged by KSM (default true).
    public var ksm: Bool?
    public var cloudInit: CloudInitSpec?

    public init(name: String, kernel: String, cpus: Int? = nil, memory: String? = nil) {
        self.name = name
        self.kernel = kernel
        self.cpus = cpus
        self.memory = memory
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, cpus, memory, cpuTemplate, kernel, initrd, cmdline, disks, nics, vsock, balloon, qos, restart, ksm, cloudInit
    }

    public init(from decoder: any Decoder) throws {
        try decoder.refuseUnknownKeys(CodingKeys.self, in: "the VM spec")
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        cpus = try c.decodeIfPresent(Int.self, forKey: .cpus)
        memory = try c.decodeIfPresent(String.self, forKey: .memory)
        cpuTemplate = try c.decodeIfPresent(CPUTemplateName.self, forKey: .cpuTemplate)
        kernel = try c.decode(String.self, forKey: .kernel)
        initrd = try c.decodeIfPresent(String.self, forKey: .initrd)
        cmdline = try c.decodeIfPresent(String.self, forKey: .cmdline)
        disks = try c.decodeIfPresent([DiskSpec].self, forKey: .disks)
        nics = try c.decodeIfPresent([NICSpec].self, forKey: .nics)
        vsock = try c.decodeIfPresent(VsockSpec.self, forKey: .vsock)
        balloon = try c.decodeIfPresent(BalloonSpec.self, forKey: .balloon)
        qos = try c.decodeIfPresent(QoSSpec.self, forKey: .qos)
        restart = try c.decodeIfPresent(RestartPolicy.self, forKey: .restart)
        ksm = try c.decodeIfPresent(Bool.self, forKey: .ksm)
        cloudInit = try c.decodeIfPresent(CloudInitSpec.self, forKey: .cloudInit)
    }

    /// Longest path or command line accepted.
    public static let maxPathLength = 4096
    /// Largest guest RAM accepted (1 TiB).
    public static let maxMemory: UInt64 = 1 << 40

    /// Guest RAM in bytes (default 256 MiB).
    public var memoryBytes: UInt64 { memory.flatMap(SpecSize.parse) ?? (256 << 20) }
    /// vCPUs (default 1).
    public var vcpus: Int { cpus ?? 1 }
    public var restartPolicy: RestartPolicy { restart ?? .never }
    public var qosClass: QoSClass { qos?.class ?? .normal }
    /// Whether the VM has a balloon (default yes: automatic ballooning needs one).
    public var hasBalloon: Bool { balloon?.enabled ?? true }

    /// Checks every value; the first problem is thrown, naming its field.
    public func validate() throws(SpecError) {
        guard Self.isValidName(name) else {
            throw SpecError("name '\(name.prefix(80))' must be 1 to 63 lower-case letters, digits or '-', starting with a letter or digit")
        }
        if let cpus, !(1...254).contains(cpus) { throw SpecError("cpus must be between 1 and 254, not \(cpus)") }
        if let memory {
            guard let bytes = SpecSize.parse(memory) else { throw SpecError("memory '\(memory.prefix(40))' is not a size (e.g. 256M, 1G)") }
            guard bytes >= 1 << 20, bytes <= Self.maxMemory else { throw SpecError("memory must be between 1M and 1024G") }
            guard bytes % 4096 == 0 else { throw SpecError("memory must be a multiple of 4K") }
        }
        try Self.checkPath(kernel, "kernel")
        if let initrd { try Self.checkPath(initrd, "initrd") }
        if let cmdline, cmdline.utf8.count > Self.maxPathLength { throw SpecError("cmdline is longer than \(Self.maxPathLength) bytes") }
        let disks = self.disks ?? []
        guard disks.count <= 16 else { throw SpecError("at most 16 disks") }
        for (i, d) in disks.enumerated() { try d.validate(index: i) }
        let nics = self.nics ?? []
        guard nics.count <= 8 else { throw SpecError("at most 8 nics") }
        for (i, n) in nics.enumerated() { try n.validate(index: i) }
        if Set(nics.map(\.tap)).count != nics.count { throw SpecError("two nics name the same tap") }
        if let vsock, !(3...0xFFFF_FFFE).contains(vsock.cid) { throw SpecError("vsock.cid must be between 3 and 4294967294") }
        try qos?.validate()
        try cloudInit?.validate()
    }

    /// VM and image names: what the API's `Name` schema allows.
    public static func isValidName(_ s: String) -> Bool {
        let bytes = Array(s.utf8)
        guard (1...63).contains(bytes.count) else { return false }
        func ok(_ b: UInt8) -> Bool { (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) }
        return ok(bytes[0]) && bytes.allSatisfy { ok($0) || $0 == 0x2D }
    }

    static func checkPath(_ path: String, _ field: String) throws(SpecError) {
        guard !path.isEmpty else { throw SpecError("\(field) must not be empty") }
        guard path.utf8.count <= maxPathLength else { throw SpecError("\(field) is longer than \(maxPathLength) bytes") }
        guard !path.utf8.contains(0) else { throw SpecError("\(field) contains a NUL byte") }
    }
}

public enum CPUTemplateName: String, Codable, Sendable, Equatable, CaseIterable {
    case baseline, host
}

/// What the daemon does when a VM's monitor exits on its own.
public enum RestartPolicy: String, Codable, Sendable, Equatable, CaseIterable {
    /// Start it again, whatever the exit status.
    case always
    /// Start it again unless it exited with status 0 (a guest power-off).
    case onFailure = "on-failure"
    case never
}

/// Priority classes; their CPU weights are 4:2:1.
public enum QoSClass: String, Codable, Sendable, Equatable, CaseIterable {
    case high, normal, low

    /// Relative CPU weight (high 4, normal 2, low 1).
    public var weightUnits: Int {
        switch self {
        case .high: return 4
        case .normal: return 2
        case .low: return 1
        }
    }
}

/// A disk: an existing file (`path`) or a copy-on-write clone the daemon makes (`clone`: an
/// image in the store by name, or a base image file).
public struct DiskSpec: Codable, Sendable, Equatable {
    public var path: String?
    public var clone: String?
    public var format: DiskFormatName?
    public var readonly: Bool?
    public var serial: String?
    /// Bytes per second (0 or nil: unlimited).
    public var bandwidth: UInt64?
    public var iops: UInt64?
    /// Bytes allowed once above `bandwidth`, spent first.
    public var burst: UInt64?

    public init(path: String? = nil, clone: String? = nil, format: DiskFormatName? = nil, readonly: Bool? = nil) {
        self.path = path
        self.clone = clone
        self.format = format
        self.readonly = readonly
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case path, clone, format, readonly, serial, bandwidth, iops, burst
    }

    public init(from decoder: any Decoder) throws {
        try decoder.refuseUnknownKeys(CodingKeys.self, in: "a disk")
        let c = try decoder.container(keyedBy: CodingKeys.self)
        path = try c.decodeIfPresent(String.self, forKey: .path)
        clone = try c.decodeIfPresent(String.self, forKey: .clone)
        format = try c.decodeIfPresent(DiskFormatName.self, forKey: .format)
        readonly = try c.decodeIfPresent(Bool.self, forKey: .readonly)
        serial = try c.decodeIfPresent(String.self, forKey: .serial)
        bandwidth = try c.decodeIfPresent(UInt64.self, forKey: .bandwidth)
        iops = try c.decodeIfPresent(UInt64.self, forKey: .iops)
        burst = try c.decodeIfPresent(UInt64.self, forKey: .burst)
    }

    func validate(index: Int) throws(SpecError) {
        switch (path, clone) {
        case (let p?, nil): try VMSpec.checkPath(p, "disks[\(index)].path")
        case (nil, let c?): try VMSpec.checkPath(c, "disks[\(index)].clone")
        case (nil, nil): throw SpecError("disks[\(index)] needs a path or a clone")
        case (_?, _?): throw SpecError("disks[\(index)] has both a path and a clone: give one")
        }
        if let serial {
            guard serial.utf8.count <= 20, serial.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != 0x2C }) else {
                throw SpecError("disks[\(index)].serial must be at most 20 printable ASCII characters without spaces or commas")
            }
        }
    }
}

public enum DiskFormatName: String, Codable, Sendable, Equatable, CaseIterable {
    case raw, qcow2
}

/// A network interface on a host TAP device.
public struct NICSpec: Codable, Sendable, Equatable {
    public var tap: String
    public var mac: String?
    public var rxBandwidth: UInt64?
    public var txBandwidth: UInt64?
    public var rxPps: UInt64?
    public var txPps: UInt64?

    public init(tap: String, mac: String? = nil) {
        self.tap = tap
        self.mac = mac
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case tap, mac, rxBandwidth, txBandwidth, rxPps, txPps
    }

    public init(from decoder: any Decoder) throws {
        try decoder.refuseUnknownKeys(CodingKeys.self, in: "a nic")
        let c = try decoder.container(keyedBy: CodingKeys.self)
        tap = try c.decode(String.self, forKey: .tap)
        mac = try c.decodeIfPresent(String.self, forKey: .mac)
        rxBandwidth = try c.decodeIfPresent(UInt64.self, forKey: .rxBandwidth)
        txBandwidth = try c.decodeIfPresent(UInt64.self, forKey: .txBandwidth)
        rxPps = try c.decodeIfPresent(UInt64.self, forKey: .rxPps)
        txPps = try c.decodeIfPresent(UInt64.self, forKey: .txPps)
    }

    func validate(index: Int) throws(SpecError) {
        let ok = tap.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x5F || b == 0x2E || b == 0x2D
        }
        guard (1...15).contains(tap.utf8.count), ok else {
            throw SpecError("nics[\(index)].tap must be 1 to 15 letters, digits, '_', '.' or '-'")
        }
        if let mac {
            let parts = mac.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 6, parts.allSatisfy({ $0.count == 2 && UInt8($0, radix: 16) != nil }) else {
                throw SpecError("nics[\(index)].mac '\(mac.prefix(40))' is not a MAC address (six hex pairs separated by ':')")
            }
        }
    }
}

public struct VsockSpec: Codable, Sendable, Equatable {
    public var cid: UInt64
    public init(cid: UInt64) { self.cid = cid }

    enum CodingKeys: String, CodingKey, CaseIterable { case cid }

    public init(from decoder: any Decoder) throws {
        try decoder.refuseUnknownKeys(CodingKeys.self, in: "vsock")
        cid = try decoder.container(keyedBy: CodingKeys.self).decode(UInt64.self, forKey: .cid)
    }
}

public struct BalloonSpec: Codable, Sendable, Equatable {
    public var enabled: Bool?
    /// The guest reports free pages, which go back to the host (default true).
    public var freePageReporting: Bool?
    public var deflateOnOOM: Bool?
    /// The daemon may inflate it under host memory pressure (default true).
    public var auto: Bool?

    public init(enabled: Bool? = nil, freePageReporting: Bool? = nil, deflateOnOOM: Bool? = nil, auto: Bool? = nil) {
        self.enabled = enabled
        self.freePageReporting = freePageReporting
        self.deflateOnOOM = deflateOnOOM
        self.auto = auto
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case enabled, freePageReporting, deflateOnOOM, auto }

    public init(from decoder: any Decoder) throws {
        try decoder.refuseUnknownKeys(CodingKeys.self, in: "balloon")
        let c = try decoder.container(keyedBy: CodingKeys.self)
        enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled)
        freePageReporting = try c.decodeIfPresent(Bool.self, forKey: .freePageReporting)
        deflateOnOOM = try c.decodeIfPresent(Bool.self, forKey: .deflateOnOOM)
        auto = try c.decodeIfPresent(Bool.self, forKey: .auto)
    }
}

/// Priority and limits, applied through the VM's cgroup.
public struct QoSSpec: Codable, Sendable, Equatable {
    public var `class`: QoSClass?
    /// CPUs' worth of time per period (0.5 = half a CPU).
    public var cpuLimit: Double?
    /// Memory limit of the whole monitor process (guest RAM + overhead).
    public var memoryLimit: String?
    /// Host CPUs the monitor may run on ("0", "0-1,3").
    public var cpuset: String?

    public init(class: QoSClass? = nil, cpuLimit: Double? = nil, memoryLimit: String? = nil, cpuset: String? = nil) {
        self.class = `class`
        self.cpuLimit = cpuLimit
        self.memoryLimit = memoryLimit
        self.cpuset = cpuset
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case `class`, cpuLimit, memoryLimit, cpuset }

    public init(from decoder: any Decoder) throws {
        try decoder.refuseUnknownKeys(CodingKeys.self, in: "qos")
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.class = try c.decodeIfPresent(QoSClass.self, forKey: .class)
        cpuLimit = try c.decodeIfPresent(Double.self, forKey: .cpuLimit)
        memoryLimit = try c.decodeIfPresent(String.self, forKey: .memoryLimit)
        cpuset = try c.decodeIfPresent(String.self, forKey: .cpuset)
    }

    /// The memory limit in bytes, if one is set and valid.
    public var memoryLimitBytes: UInt64? { memoryLimit.flatMap(SpecSize.parse) }

    public func validate() throws(SpecError) {
        if let cpuLimit, !(cpuLimit >= 0.01 && cpuLimit <= 1024) { throw SpecError("qos.cpuLimit must be between 0.01 and 1024 CPUs") }
        if let memoryLimit {
            guard let bytes = SpecSize.parse(memoryLimit), bytes >= 16 << 20 else {
                throw SpecError("qos.memoryLimit '\(memoryLimit.prefix(40))' must be a size of at least 16M")
            }
        }
        if let cpuset {
            guard !cpuset.isEmpty, cpuset.count <= 64, cpuset.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == "," || $0 == "-") }) else {
                throw SpecError("qos.cpuset '\(cpuset.prefix(64))' must be CPU numbers and ranges like 0-1,3")
            }
        }
    }
}

/// A cloud-init NoCloud seed; the daemon writes it to a small FAT disk labelled "cidata".
public struct CloudInitSpec: Codable, Sendable, Equatable {
    public var userData: String?
    public var metaData: String?
    public var networkConfig: String?

    public init(userData: String? = nil, metaData: String? = nil, networkConfig: String? = nil) {
        self.userData = userData
        self.metaData = metaData
        self.networkConfig = networkConfig
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case userData, metaData, networkConfig }

    public init(from decoder: any Decoder) throws {
        try decoder.refuseUnknownKeys(CodingKeys.self, in: "cloudInit")
        let c = try decoder.container(keyedBy: CodingKeys.self)
        userData = try c.decodeIfPresent(String.self, forKey: .userData)
        metaData = try c.decodeIfPresent(String.self, forKey: .metaData)
        networkConfig = try c.decodeIfPresent(String.self, forKey: .networkConfig)
    }

    public static let maxFileLength = 65536

    public func validate() throws(SpecError) {
        for (field, value) in [("userData", userData), ("metaData", metaData), ("networkConfig", networkConfig)] {
            if let value, value.utf8.count > Self.maxFileLength {
                throw SpecError("cloudInit.\(field) is longer than \(Self.maxFileLength) bytes")
            }
        }
    }
}
