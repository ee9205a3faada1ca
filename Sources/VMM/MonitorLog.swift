#if canImport(Glibc)
import Glibc
#endif
import Logging

/// How the monitor writes its log records on stderr.
public enum MonitorLogFormat: String, Sendable {
    /// `skiff: error: …`, `skiff: warning: …`, `skiff: note: …`, `skiff: …`, with
    /// ` key=value` metadata after the message: for people at a terminal.
    case text
    /// One JSON object per line (`time`, `level`, `label`, `message`, then the metadata as
    /// strings): for a host daemon collecting the monitors' logs.
    case json
}

/// A swift-log handler writing one line per record to stderr with a single write(2), so lines
/// from different threads never interleave.
public struct MonitorLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public let label: String
    public let format: MonitorLogFormat

    public init(label: String, format: MonitorLogFormat, level: Logger.Level) {
        self.label = label
        self.format = format
        logLevel = level
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var all = metadata
        if let extra = event.metadata { all.merge(extra) { $1 } }
        let line = format == .json
            ? Self.jsonLine(level: event.level, label: label, message: "\(event.message)", metadata: all)
            : Self.textLine(level: event.level, message: "\(event.message)", metadata: all)
        unsafe line.utf8CString.withUnsafeBufferPointer { buf in
            _ = unsafe Glibc.write(2, buf.baseAddress, buf.count - 1)
        }
    }

    static func textLine(level: Logger.Level, message: String, metadata: Logger.Metadata) -> String {
        let prefix: String
        switch level {
        case .critical, .error: prefix = "skiff: error: "
        case .warning: prefix = "skiff: warning: "
        case .notice: prefix = "skiff: note: "
        case .info: prefix = "skiff: "
        case .debug, .trace: prefix = "skiff: debug: "
        }
        var line = prefix + message
        for key in metadata.keys.sorted() {
            guard let value = metadata[key] else { continue }
            let text = "\(value)"
            line += " \(key)=" + (text.contains(" ") || text.isEmpty ? "\"\(text)\"" : text)
        }
        return line + "\n"
    }

    static func jsonLine(level: Logger.Level, label: String, message: String, metadata: Logger.Metadata) -> String {
        var ts = timespec()
        unsafe clock_gettime(CLOCK_REALTIME, &ts)
        let millis = Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
        var fields: [(String, String)] = [("level", level.rawValue), ("label", label), ("message", message)]
        for key in metadata.keys.sorted() where !["time", "level", "label", "message"].contains(key) {
            if let value = metadata[key] { fields.append((key, "\(value)")) }
        }
        var line = "{\"time\":\(millis / 1000).\(String(millis % 1000).leftPadded(to: 3))"
        for (k, v) in fields { line += ",\"\(jsonEscaped(k))\":\"\(jsonEscaped(v))\"" }
        return line + "}\n"
    }

    /// `s` as the inside of a JSON string.
    static func jsonEscaped(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}

/// The monitor's logger.
public enum MonitorLog {
    /// A logger on stderr. The format comes from SKIFF_LOG_FORMAT (`text`, the default, or
    /// `json`) and the level from SKIFF_LOG_LEVEL (a swift-log level name); without it, text
    /// shows notices and above (`debug` with `verbose`), JSON info and above.
    public static func logger(verbose: Bool = false, environment: [String: String]? = nil) -> Logger {
        func value(_ name: String) -> String? {
            if let environment { return environment[name] }
            return unsafe getenv(name).map { unsafe String(cString: $0) }
        }
        let format = value("SKIFF_LOG_FORMAT").flatMap(MonitorLogFormat.init(rawValue:)) ?? .text
        let level = value("SKIFF_LOG_LEVEL").flatMap(Logger.Level.init(rawValue:))
            ?? (verbose ? .debug : format == .json ? .info : .notice)
        return Logger(label: "skiff") { label in MonitorLogHandler(label: label, format: format, level: level) }
    }
}
