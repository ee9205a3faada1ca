#if canImport(Glibc)
import Glibc
#endif
import ControlProtocol
import SystemExtras

/// Stream sockets for migration endpoints: TCP (IPv4 or IPv6, by name or address) and unix.
enum Sockets {
    static func connect(_ endpoint: MigrationEndpoint, timeout: Double) throws(MigrationError) -> OwnedFileDescriptor {
        switch endpoint {
        case .unix(let path):
            let fd = try unixSocket()
            var address = try unixAddress(path)
            let r = unsafe withUnsafePointer(to: &address) {
                unsafe $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { unsafe Glibc.connect(fd.rawValue, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            guard r == 0 else { throw .transport(unsafe "cannot connect to \(endpoint): \(String(cString: strerror(errno)))") }
            return fd
        case .tcp(let host, let port):
            var lastError = "no address"
            for (family, address, length) in try resolve(host, port, passive: false) {
                let s = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
                guard s >= 0 else { continue }
                let fd = OwnedFileDescriptor(taking: s)
                let r = unsafe address.withUnsafeBytes { unsafe Glibc.connect(s, $0.baseAddress?.assumingMemoryBound(to: sockaddr.self), length) }
                if r == 0 { return fd }
                guard errno == EINPROGRESS else {
                    lastError = unsafe String(cString: strerror(errno))
                    continue
                }
                var p = pollfd(fd: s, events: Int16(POLLOUT), revents: 0)
                guard unsafe poll(&p, 1, Int32(timeout * 1000)) > 0 else {
                    lastError = "timed out after \(Int(timeout)) s"
                    continue
                }
                var error: Int32 = 0
                var size = socklen_t(MemoryLayout<Int32>.size)
                unsafe getsockopt(s, SOL_SOCKET, SO_ERROR, &error, &size)
                if error == 0 { return fd }
                lastError = unsafe String(cString: strerror(error))
            }
            throw .transport("cannot connect to \(endpoint): \(lastError)")
        }
    }

    static func listen(_ endpoint: MigrationEndpoint) throws(MigrationError) -> OwnedFileDescriptor {
        switch endpoint {
        case .unix(let path):
            var st = stat()
            if unsafe lstat(path, &st) == 0 { throw .transport("\(path) already exists") }
            let fd = try unixSocket()
            var address = try unixAddress(path)
            let oldMask = umask(0o177)
            let r = unsafe withUnsafePointer(to: &address) {
                unsafe $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { unsafe bind(fd.rawValue, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            umask(oldMask)
            guard r == 0, Glibc.listen(fd.rawValue, 1) == 0 else { throw .transport(unsafe "cannot listen on \(endpoint): \(String(cString: strerror(errno)))") }
            return fd
        case .tcp(let host, let port):
            var lastError = "no address"
            for (family, address, length) in try resolve(host, port, passive: true) {
                let s = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
                guard s >= 0 else { continue }
                let fd = OwnedFileDescriptor(taking: s)
                var one: Int32 = 1
                unsafe setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
                let r = unsafe address.withUnsafeBytes { unsafe bind(s, $0.baseAddress?.assumingMemoryBound(to: sockaddr.self), length) }
                if r == 0 && Glibc.listen(s, 1) == 0 { return fd }
                lastError = unsafe String(cString: strerror(errno))
            }
            throw .transport("cannot listen on \(endpoint): \(lastError)")
        }
    }

    static func boundPort(_ fd: Int32) -> UInt16? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let r = unsafe withUnsafeMutablePointer(to: &storage) {
            unsafe $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { unsafe getsockname(fd, $0, &length) }
        }
        guard r == 0 else { return nil }
        switch Int32(storage.ss_family) {
        case AF_INET:
            return unsafe withUnsafePointer(to: &storage) { unsafe $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { unsafe UInt16(bigEndian: $0.pointee.sin_port) } }
        case AF_INET6:
            return unsafe withUnsafePointer(to: &storage) { unsafe $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { unsafe UInt16(bigEndian: $0.pointee.sin6_port) } }
        default:
            return nil
        }
    }

    private static func unixSocket() throws(MigrationError) -> OwnedFileDescriptor {
        let s = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard s >= 0 else { throw .transport(unsafe "socket: \(String(cString: strerror(errno)))") }
        return OwnedFileDescriptor(taking: s)
    }

    private static func unixAddress(_ path: String) throws(MigrationError) -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard !bytes.isEmpty, bytes.count < MemoryLayout.size(ofValue: address.sun_path), !bytes.contains(0) else {
            throw .transport("unix socket path '\(path)' is too long")
        }
        unsafe withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { unsafe raw[i] = b }
        }
        return address
    }

    /// Addresses for `host:port` (numeric or by name).
    private static func resolve(_ host: String, _ port: UInt16, passive: Bool) throws(MigrationError) -> [(Int32, [UInt8], socklen_t)] {
        var hints = unsafe addrinfo()
        unsafe hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        unsafe hints.ai_family = AF_UNSPEC
        if passive { unsafe hints.ai_flags = AI_PASSIVE }
        var result: UnsafeMutablePointer<addrinfo>?
        let r = unsafe getaddrinfo(host, String(port), &hints, &result)
        guard r == 0, let first = unsafe result else { throw .transport(unsafe "cannot resolve \(host): \(String(cString: gai_strerror(r)))") }
        defer { unsafe freeaddrinfo(result) }
        var out: [(Int32, [UInt8], socklen_t)] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = unsafe first
        while let ai = unsafe cursor {
            if let a = unsafe ai.pointee.ai_addr {
                unsafe out.append((ai.pointee.ai_family, Array(UnsafeRawBufferPointer(start: a, count: Int(ai.pointee.ai_addrlen))), ai.pointee.ai_addrlen))
            }
            unsafe cursor = unsafe ai.pointee.ai_next
        }
        return out
    }
}
