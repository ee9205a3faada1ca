@testable import X86Emulator

/// The fields in which two states differ, compactly, for failure messages.
func differences(_ a: CPUState, _ b: CPUState) -> [String] {
    var d: [String] = []
    func hx(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }
    for i in 0..<16 where a.gpr[i] != b.gpr[i] { d.append("gpr[\(i)] \(hx(a.gpr[i])) vs \(hx(b.gpr[i]))") }
    for i in 0..<16 where a.xmm[i] != b.xmm[i] {
        d.append("xmm\(i) \(hx(a.xmm[i].high)):\(hx(a.xmm[i].low)) vs \(hx(b.xmm[i].high)):\(hx(b.xmm[i].low))")
    }
    if a.rip != b.rip { d.append("rip \(hx(a.rip)) vs \(hx(b.rip))") }
    if a.rflags != b.rflags { d.append("rflags \(hx(a.rflags)) vs \(hx(b.rflags))") }
    if a.mxcsr != b.mxcsr { d.append("mxcsr \(hx(UInt64(a.mxcsr))) vs \(hx(UInt64(b.mxcsr)))") }
    if a.cr2 != b.cr2 { d.append("cr2 \(hx(a.cr2)) vs \(hx(b.cr2))") }
    for s in SegmentName.allCases where a[s] != b[s] { d.append("\(s) \(a[s]) vs \(b[s])") }
    if d.isEmpty && a != b { d.append("other fields differ") }
    return d
}
