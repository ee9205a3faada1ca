import BinaryCoding

/// The control socket's wire format: each message is a frame of an 8-byte header — the
/// magic "SKC" and the protocol version byte, then the payload length (UInt32, little-endian)
/// — followed by the payload, a `ControlRequest` or `ControlReply` in BinaryCoding. Frames
/// are bounded; a peer that speaks another version gets a `protocolMismatch` error.
public enum ControlFrame {
    public static let version: UInt8 = 1
    static let magic: [UInt8] = [0x53, 0x4b, 0x43]  // "SKC"
    public static let headerSize = 8
    /// Largest payload accepted (requests and replies are small; metrics lists are the largest).
    public static let maxPayload = 1 << 20

    /// The frame carrying `message`.
    public static func encode<T: Encodable>(_ message: T) throws(ControlError) -> [UInt8] {
        let payload: [UInt8]
        do {
            payload = try BinaryEncoder().encode(message)
        } catch {
            throw ControlError(.failed, "cannot encode a control message: \(error)")
        }
        guard payload.count <= maxPayload else { throw ControlError(.failed, "control message of \(payload.count) bytes is too large") }
        let n = UInt32(payload.count)
        return magic + [version] + [UInt8(truncatingIfNeeded: n), UInt8(truncatingIfNeeded: n >> 8),
                                    UInt8(truncatingIfNeeded: n >> 16), UInt8(truncatingIfNeeded: n >> 24)] + payload
    }

    /// Splits the first complete frame off `buffer`: nil while more bytes are needed,
    /// the payload otherwise; throws on a bad header (the connection should then close).
    public static func take(from buffer: inout [UInt8]) throws(ControlError) -> [UInt8]? {
        guard buffer.count >= headerSize else {
            // Reject a wrong magic early, before waiting for a whole header.
            for (i, b) in buffer.prefix(3).enumerated() where b != magic[i] {
                throw ControlError(.protocolMismatch, "not a Skiff control stream")
            }
            return nil
        }
        guard Array(buffer[0..<3]) == magic else { throw ControlError(.protocolMismatch, "not a Skiff control stream") }
        guard buffer[3] == version else {
            throw ControlError(.protocolMismatch, "control protocol version \(buffer[3]); this side speaks version \(version)")
        }
        let length = Int(buffer[4]) | Int(buffer[5]) << 8 | Int(buffer[6]) << 16 | Int(buffer[7]) << 24
        guard length <= maxPayload else { throw ControlError(.invalidRequest, "control message of \(length) bytes is larger than \(maxPayload)") }
        guard buffer.count >= headerSize + length else { return nil }
        let payload = Array(buffer[headerSize..<(headerSize + length)])
        buffer.removeSubrange(0..<(headerSize + length))
        return payload
    }

    /// Decodes a payload as `T`.
    public static func decode<T: Decodable>(_ type: T.Type, from payload: [UInt8]) throws(ControlError) -> T {
        var limits = BinaryDecoder.Limits.default
        limits.maxInputSize = maxPayload
        do {
            return try BinaryDecoder(limits: limits).decode(type, from: payload)
        } catch {
            throw ControlError(.invalidRequest, "malformed control message: \(error)")
        }
    }
}
