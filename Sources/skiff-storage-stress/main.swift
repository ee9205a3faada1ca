import Crypto
import Glibc
import ImageCommands
import Storage
import ImageStore

// Test and benchmark companion of the Storage target:
//   crash-writer IMAGE SEED        random write/zero/flush loop until killed; prints "F <n>" after each flush
//   bench [-w] [-c N] [-d DEPTH] [-s SIZE] [-S STEP] [-f FMT] FILE   same access pattern as `qemu-img bench`
//   chunk-bench [MiB]              FastCDC and SHA-256 throughput on one core
//   image ...                      the `skiff image` verbs

func fail(_ message: String) -> Never {
    let text = "skiff-storage-stress: \(message)\n"
    _ = unsafe text.withCString { unsafe Glibc.write(2, $0, strlen($0)) }
    exit(2)
}

func now() -> Double {
    var ts = timespec()
    unsafe clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

func crashWriter(_ args: [String]) throws {
    guard args.count == 2, let seed = UInt64(args[1]) else { fail("usage: crash-writer IMAGE SEED") }
    let image = try DiskImage.open(path: args[0], format: .qcow2, readOnly: false)
    var workload = StressWorkload(seed: seed, diskSize: image.size)
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 128 << 10, alignment: 4096)
    while true {
        switch workload.nextOperation() {
        case .flush:
            try image.flush()
            let line = "F \(workload.index)\n"
            _ = unsafe line.withCString { unsafe Glibc.write(1, $0, strlen($0)) }
        case .write(let offset, let length):
            let chunk = unsafe UnsafeMutableRawBufferPointer(rebasing: buffer[0..<length])
            unsafe StressWorkload.fill(chunk, op: workload.index, offset: offset)
            unsafe try image.write(at: offset, from: UnsafeRawBufferPointer(chunk))
        case .zero(let offset, let length):
            try image.writeZeroes(at: offset, length: UInt64(length), unmap: workload.index % 2 == 0)
        }
    }
}

/// Debug aid for the crash test: which op last touched a byte, and what the image holds there.
func crashExplain(_ args: [String]) throws {
    guard args.count == 3, let seed = UInt64(args[1]), let byte = UInt64(args[2]) else { fail("usage: crash-explain IMAGE SEED BYTE") }
    let image = try DiskImage.open(path: args[0], format: .qcow2, readOnly: true)
    var workload = StressWorkload(seed: seed, diskSize: image.size)
    var one = [UInt8](repeating: 0, count: 1)
    unsafe try one.withUnsafeMutableBytes { unsafe try image.read(at: byte, into: $0) }
    print("image byte: \(one[0]) backing: \(StressWorkload.backingPattern(byte))")
    for _ in 0..<3000 {
        let op = workload.nextOperation()
        switch op {
        case .flush: print("flush at \(workload.index)")
        case .write(let o, let l) where byte >= o && byte < o + UInt64(l):
            print("op \(workload.index) write [\(o), +\(l)) byte=\(StressWorkload.pattern(op: workload.index, offset: byte))")
        case .zero(let o, let l) where byte >= o && byte < o + UInt64(l):
            print("op \(workload.index) zero [\(o), +\(l)) unmap=\(workload.index % 2 == 0)")
        default: break
        }
    }
}

/// Mirrors qemu-img bench: request k goes to (offset + k * step) mod size; `depth` requests in flight
/// (one thread each, since the block device is synchronous).
func bench(_ args: [String]) throws {
    var write = false
    var count = 75000
    var depth = 64
    var bufferSize = 4096
    var step: UInt64 = 0
    var format = DiskFormat.qcow2
    var path: String?
    var i = 0
    func value() -> String {
        i += 1
        guard i < args.count else { fail("missing value for \(args[i - 1])") }
        return args[i]
    }
    while i < args.count {
        switch args[i] {
        case "-w": write = true
        case "-c": count = Int(value()) ?? count
        case "-d": depth = max(1, Int(value()) ?? depth)
        case "-s": bufferSize = Int(value()) ?? bufferSize
        case "-S": step = UInt64(value()) ?? step
        case "-f": format = (try? DiskFormat(name: value())) ?? format
        default: path = args[i]
        }
        i += 1
    }
    guard let path else { fail("usage: bench [-w] [-c N] [-d DEPTH] [-s SIZE] [-S STEP] [-f FMT] FILE") }
    if step == 0 { step = UInt64(bufferSize) }
    let image = try DiskImage.open(path: path, format: format, readOnly: !write)
    let size = image.size
    let next = UnsafeMutablePointer<Int>.allocate(capacity: 1)
    unsafe next.initialize(to: 0)
    let counterLock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    unsafe pthread_mutex_init(counterLock, nil)
    @safe final class Shared: @unchecked Sendable {
        // @unchecked: `next` and `failure` are touched only with `lock` held.
        let image: any BlockDevice
        let next: UnsafeMutablePointer<Int>
        let lock: UnsafeMutablePointer<pthread_mutex_t>
        let count: Int, bufferSize: Int, step: UInt64, size: UInt64, write: Bool
        var failure: String?
        init(image: any BlockDevice, next: UnsafeMutablePointer<Int>, lock: UnsafeMutablePointer<pthread_mutex_t>,
             count: Int, bufferSize: Int, step: UInt64, size: UInt64, write: Bool) {
            self.image = image; unsafe self.next = unsafe next; unsafe self.lock = unsafe lock; self.count = count
            self.bufferSize = bufferSize; self.step = step; self.size = size; self.write = write
        }
        func run() {
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bufferSize, alignment: 4096)
            defer { unsafe buffer.deallocate() }
            unsafe buffer.initializeMemory(as: UInt8.self, repeating: 0xa5)
            while true {
                unsafe pthread_mutex_lock(lock)
                let k = unsafe next.pointee
                unsafe next.pointee += 1
                unsafe pthread_mutex_unlock(lock)
                if k >= count { return }
                // qemu-img bench: offset += step, wrapped at the image size.
                var offset = (UInt64(k) &* step) % size
                if offset + UInt64(bufferSize) > size { offset = size - UInt64(bufferSize) }
                do {
                    if write {
                        unsafe try image.write(at: offset, from: UnsafeRawBufferPointer(buffer))
                    } else {
                        unsafe try image.read(at: offset, into: buffer)
                    }
                } catch {
                    unsafe pthread_mutex_lock(lock)
                    failure = "\(error)"
                    unsafe pthread_mutex_unlock(lock)
                    return
                }
            }
        }
    }
    let shared = unsafe Shared(image: image, next: next, lock: counterLock, count: count, bufferSize: bufferSize,
                        step: step, size: size, write: write)
    let start = now()
    if depth == 1 {
        shared.run()
    } else {
        var threads: [pthread_t] = []
        for _ in 0..<depth {
            var thread = pthread_t()
            let box = unsafe Unmanaged.passRetained(shared).toOpaque()
            unsafe pthread_create(&thread, nil, { arg in
                guard let arg = unsafe arg else { return nil }
                let shared = unsafe Unmanaged<Shared>.fromOpaque(arg).takeRetainedValue()
                shared.run()
                return nil
            }, unsafe box)
            threads.append(thread)
        }
        for thread in threads { pthread_join(thread, nil) }
    }
    try image.flush()
    let elapsed = now() - start
    if let failure = shared.failure { fail(failure) }
    try image.close()
    print(String(format: "Run completed in %.3f seconds (%d requests, %.0f IOPS)", elapsed, count, Double(count) / elapsed))
}

func chunkBench(_ args: [String]) throws {
    let mib = args.first.flatMap { Int($0) } ?? 256
    let size = mib << 20
    var data = [UInt8](repeating: 0, count: size)
    var state: UInt64 = 0x1234_5678_9abc_def1
    unsafe data.withUnsafeMutableBytes { raw in
        let words = unsafe raw.bindMemory(to: UInt64.self)
        for i in 0..<words.count {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            unsafe words[i] = state
        }
    }
    let chunker = try FastCDC()
    var chunks = 0
    var start = now()
    unsafe data.withUnsafeBytes { raw in
        var position = 0
        while position < raw.count {
            unsafe position += chunker.cut(UnsafeRawBufferPointer(rebasing: raw[position...]))
            chunks += 1
        }
    }
    let chunkTime = now() - start
    start = now()
    var sink: UInt8 = 0
    unsafe data.withUnsafeBytes { raw in
        var position = 0
        while position < raw.count {
            let n = min(1 << 16, raw.count - position)
            unsafe sink ^= SHA256.hash(data: UnsafeRawBufferPointer(rebasing: raw[position..<(position + n)])).first { _ in true } ?? 0
            position += n
        }
    }
    let hashTime = now() - start
    let mb = Double(size) / 1e6
    print(String(format: "fastcdc: %.0f MB/s (%d chunks, average %d bytes)", mb / chunkTime, chunks, size / max(chunks, 1)))
    print(String(format: "sha256: %.0f MB/s", mb / hashTime))
    print(String(format: "chunk+hash: %.0f MB/s per core%@", mb / (chunkTime + hashTime), sink == 0 ? "" : ""))
}

var arguments = Array(CommandLine.arguments.dropFirst())
guard let verb = arguments.first else { fail("usage: crash-writer | bench | chunk-bench | image ...") }
arguments.removeFirst()
do {
    switch verb {
    case "crash-writer": try crashWriter(arguments)
    case "crash-explain": try crashExplain(arguments)
    case "bench": try bench(arguments)
    case "chunk-bench": try chunkBench(arguments)
    case "image": ImageCommand.main(arguments)
    default: fail("unknown verb \(verb)")
    }
} catch {
    fail("\(error)")
}
