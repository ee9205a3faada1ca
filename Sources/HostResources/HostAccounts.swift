import Foundation

/// The host's users and groups as `/etc/passwd` and `/etc/group` list them. Read from the files
/// rather than through NSS (`getpwuid`, `getgrnam`): the release daemon is a static executable,
/// and glibc's NSS modules cannot be loaded into one. Other sources (LDAP, systemd's dynamic
/// users) are not seen; the jail uid range defaults far above the ids they usually hand out.
public struct HostAccounts: Sendable, Equatable {
    /// Every uid `passwd` names.
    public var uids: Set<UInt32> = []
    /// Every gid `passwd` (primary groups) and `group` name.
    public var gids: Set<UInt32> = []
    /// Group names and their gids.
    public var groups: [String: UInt32] = [:]

    /// Reads the two files; a missing or unreadable file counts as empty.
    public static func read(passwd: String = "/etc/passwd", group: String = "/etc/group") -> HostAccounts {
        HostAccounts(passwd: text(passwd), group: text(group))
    }

    /// Parses the two files' contents (`name:password:uid:gid:...` and `name:password:gid:members`);
    /// malformed lines and comments are skipped.
    public init(passwd: String, group: String) {
        for line in passwd.split(separator: "\n") where !line.hasPrefix("#") {
            let f = line.split(separator: ":", omittingEmptySubsequences: false)
            guard f.count >= 4, let uid = UInt32(f[2]) else { continue }
            uids.insert(uid)
            if let gid = UInt32(f[3]) { gids.insert(gid) }
        }
        for line in group.split(separator: "\n") where !line.hasPrefix("#") {
            let f = line.split(separator: ":", omittingEmptySubsequences: false)
            guard f.count >= 3, let gid = UInt32(f[2]), !f[0].isEmpty else { continue }
            gids.insert(gid)
            groups[String(f[0])] = gid
        }
    }

    public init() {}

    /// Whether `id` is named as a user or a group.
    public func names(_ id: UInt32) -> Bool { uids.contains(id) || gids.contains(id) }

    private static func text(_ path: String) -> String {
        // Bounded: account files are small; a huge one is not read past 16 MiB.
        guard let h = FileHandle(forReadingAtPath: path) else { return "" }
        defer { try? h.close() }
        let data = (try? h.read(upToCount: 16 << 20)) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}
