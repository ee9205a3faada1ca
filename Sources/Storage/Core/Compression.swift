import CStorage
import Glibc

/// Raw deflate (no zlib header, as qcow2 stores it) and zstd decompression, both bounded by the output size.
package enum Compression {
    /// Inflates raw deflate `input` into exactly `output.count` bytes; false if the data is bad or short.
    package static func inflateRaw(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) -> Bool {
        guard let inBase = input.baseAddress, let outBase = output.baseAddress else { return false }
        var stream = unsafe z_stream()
        guard unsafe inflateInit2_(&stream, -15, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else { return false }
        defer { unsafe inflateEnd(&stream) }
        unsafe stream.next_in = unsafe UnsafeMutablePointer(mutating: inBase.assumingMemoryBound(to: UInt8.self))
        unsafe stream.avail_in = UInt32(clamping: input.count)
        unsafe stream.next_out = unsafe outBase.assumingMemoryBound(to: UInt8.self)
        unsafe stream.avail_out = UInt32(clamping: output.count)
        let result = unsafe inflate(&stream, Z_FINISH)
        // Trailing bytes after the stream are normal (compressed clusters are sector padded).
        guard result == Z_STREAM_END || result == Z_BUF_ERROR || result == Z_OK else { return false }
        return unsafe stream.avail_out == 0
    }

    /// Deflates `input` (raw deflate, level 1..9) into a new array; nil if it does not shrink.
    package static func deflateRaw(_ input: UnsafeRawBufferPointer, level: Int32 = 1) -> [UInt8]? {
        guard let inBase = input.baseAddress, input.count > 0 else { return nil }
        var stream = unsafe z_stream()
        guard unsafe deflateInit2_(&stream, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION,
            Int32(MemoryLayout<z_stream>.size)) == Z_OK
        else { return nil }
        defer { unsafe deflateEnd(&stream) }
        let capacity = input.count - input.count / 16
        var output = [UInt8](repeating: 0, count: capacity)
        let produced: Int? = unsafe output.withUnsafeMutableBytes { out in
            guard let outBase = out.baseAddress else { return nil }
            unsafe stream.next_in = unsafe UnsafeMutablePointer(mutating: inBase.assumingMemoryBound(to: UInt8.self))
            unsafe stream.avail_in = UInt32(clamping: input.count)
            unsafe stream.next_out = unsafe outBase.assumingMemoryBound(to: UInt8.self)
            unsafe stream.avail_out = UInt32(clamping: out.count)
            guard unsafe deflate(&stream, Z_FINISH) == Z_STREAM_END else { return nil }
            return unsafe out.count - Int(stream.avail_out)
        }
        guard let n = produced else { return nil }
        output.removeSubrange(n...)
        return output
    }

    /// Decompresses one zstd frame at the start of `input` into exactly `output.count` bytes.
    package static func zstdDecompress(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) -> Bool {
        guard let api = ZstdLibrary.shared, let inBase = input.baseAddress, let outBase = output.baseAddress else {
            return false
        }
        let frame = unsafe api.findFrameCompressedSize(inBase, input.count)
        if api.isError(frame) != 0 || frame > input.count { return false }
        let n = unsafe api.decompress(outBase, output.count, inBase, frame)
        return api.isError(n) == 0 && n == output.count
    }

    /// True when libzstd can be loaded (zstd-compressed qcow2 clusters are readable).
    package static var zstdAvailable: Bool { ZstdLibrary.shared != nil }
}

/// libzstd loaded at run time, so building needs no zstd headers.
@safe private struct ZstdLibrary: Sendable {
    typealias Decompress = @convention(c) (UnsafeMutableRawPointer, Int, UnsafeRawPointer, Int) -> Int
    typealias FrameSize = @convention(c) (UnsafeRawPointer, Int) -> Int
    typealias IsError = @convention(c) (Int) -> UInt32
    package let decompress: Decompress
    package let findFrameCompressedSize: FrameSize
    package let isError: IsError

    package static let shared: ZstdLibrary? = {
        guard let handle = unsafe dlopen("libzstd.so.1", RTLD_NOW | RTLD_LOCAL),
            let d = unsafe dlsym(handle, "ZSTD_decompress"),
            let f = unsafe dlsym(handle, "ZSTD_findFrameCompressedSize"),
            let e = unsafe dlsym(handle, "ZSTD_isError")
        else { return nil }
        return unsafe ZstdLibrary(
            decompress: unsafeBitCast(d, to: Decompress.self),
            findFrameCompressedSize: unsafeBitCast(f, to: FrameSize.self),
            isError: unsafeBitCast(e, to: IsError.self))
    }()
}
