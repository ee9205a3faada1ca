import Foundation
import GuestMemory
import Synchronization
import Testing
import Virtio
@testable import VMM

/// Resident host memory behind guest RAM, measured with mincore(2) over every region's mapping.
enum GuestResidency {
    static func residentBytes(_ memory: GuestMemory) -> UInt64 {
        let page = 4096
        var total: UInt64 = 0
        for r in memory.regions {
            let pages = (r.mapping.size + page - 1) / page
            var vector = [UInt8](repeating: 0, count: pages)
            guard mincore(r.mapping.base, r.mapping.size, &vector) == 0 else { return 0 }
            total += UInt64(vector.reduce(0) { $0 + Int($1 & 1) }) * UInt64(page)
        }
        return total
    }
}

/// What the host saw while driving the balloon guest.
struct BalloonObservations: Sendable {
    var touched: UInt64 = 0
    var inflated: UInt64 = 0
    var afterDeflateAndReport: UInt64 = 0
    var statusAfterInflate: VirtioBalloon.Status?
    var statistics: VirtioBalloon.Status?
    var failure: String?
}

/// The balloon and console guests on real KVM.
@Suite(.enabled(if: KVMAvailability.shouldRun, KVMAvailability.skipReason))
struct VirtioBalloonGuestTests {
    static let mib: UInt64 = 32
    static let pages = mib * 256

    @Test func inflatingReturnsTheGuestsPagesToTheHostAndDeflatingGivesThemBack() throws {
        let seen = Mutex(BalloonObservations())
        let run = try GuestKit.boot("virtio-balloon.elf", cmdline: "mib=\(Self.mib)", memory: 64 << 20, timeout: 120, configure: {
            $0.devices = [.balloon(BalloonSpec(statistics: true, freePageReporting: true))]
        }, whileRunning: { vm, console in
            func fail(_ why: String) {
                seen.withLock { $0.failure = why }
                vm.stop()
            }
            guard let memory = vm.guestMemory else { return fail("no guest memory") }
            guard console.waitFor("touched \(Self.pages) pages", timeout: 60) else { return fail("guest did not touch its pages") }
            let touched = GuestResidency.residentBytes(memory)
            do {
                try vm.setBalloonTarget(pages: Self.pages)
            } catch {
                return fail("setBalloonTarget: \(error)")
            }
            guard console.waitFor("inflated \(Self.pages)\n", timeout: 60) else { return fail("guest did not inflate") }
            let inflated = GuestResidency.residentBytes(memory)
            let afterInflate = vm.balloonStatistics()
            let fresh = vm.balloonStatistics(freshWithin: 10)
            seen.withLock {
                $0.touched = touched
                $0.inflated = inflated
                $0.statusAfterInflate = afterInflate
                $0.statistics = fresh
            }
            do {
                try vm.setBalloonTarget(pages: 0)
            } catch {
                return fail("setBalloonTarget(0): \(error)")
            }
            guard console.waitFor("reported \(Self.pages)\n", timeout: 60) else { return fail("guest did not deflate and report") }
            let reported = GuestResidency.residentBytes(memory)
            seen.withLock { $0.afterDeflateAndReport = reported }
            _ = vm.balloonStatistics(freshWithin: 10)  // lets the guest go on to check the pages
        })
        let s = seen.withLock { $0 }
        #expect(s.failure == nil, "\(s.failure ?? "")\n\(run.output)")
        #expect(run.outcome == GuestKit.passStatus, "\(run.output)")
        #expect(run.output.contains("virtio-balloon 00:01.0 features 0x100000022"), "\(run.output)")
        #expect(run.output.contains("deflated \(Self.pages) zeroed \(Self.pages)"), "\(run.output)")
        #expect(run.output.contains("report zeroed \(Self.pages)"), "\(run.output)")

        // Inflating 32 MiB gives back about 32 MiB of host memory (the guest's own rings and
        // stack pages stay; allow 2 MiB either way).
        let mib = Double(1 << 20)
        let freed = (Double(s.touched) - Double(s.inflated)) / mib
        print("balloon guest: resident \(Double(s.touched) / mib) MiB after touching, \(Double(s.inflated) / mib) MiB after inflating \(Self.mib) MiB (freed \(freed) MiB), \(Double(s.afterDeflateAndReport) / mib) MiB after deflating, re-touching and reporting")
        #expect(s.touched >= Self.mib << 20, "touching \(Self.mib) MiB must make the host back it")
        #expect(abs(freed - Double(Self.mib)) <= 2, "freed \(freed) MiB")
        #expect(s.afterDeflateAndReport <= s.inflated + (2 << 20), "reported pages must be discarded again")

        let status = try #require(s.statusAfterInflate)
        #expect(status.targetPages == UInt32(Self.pages))
        #expect(status.actualPages == UInt32(Self.pages))
        #expect(status.inflatedPages == Self.pages)
        #expect(status.rejected == 0)
        let fresh = try #require(s.statistics)
        #expect(fresh.statisticsUpdates >= 2, "a fresh statistics buffer must arrive")
        let stats = try #require(fresh.statistics)
        // Unwrapped first: #expect on a UInt64? operand reads 9 bytes from an 8-byte stack slot in
        // Swift 6.3.1's AnyHashable conversion thunk (AddressSanitizer, docs/sanitizers.md).
        let total = try #require(stats[.totalMemory]), free = try #require(stats[.freeMemory])
        let faults = try #require(stats[.minorFaults])
        #expect(total == 64 << 20)
        #expect(free == (64 - 16) << 20, "the balloon's pages count as free")
        #expect(faults == fresh.statisticsUpdates, "the guest numbers its buffers")
        #expect(run.vm.balloonStatistics() == nil, "the ended VM has no balloon")
    }

    @Test func theTargetCannotExceedGuestRAMAndNeedsABalloon() throws {
        let refusal = Mutex<String?>(nil)
        _ = try GuestKit.boot("virtio-balloon.elf", memory: 64 << 20, timeout: 30, configure: {
            $0.devices = [.balloon(BalloonSpec())]
        }, whileRunning: { vm, console in
            _ = console.waitFor("touched", timeout: 20)
            do {
                try vm.setBalloonTarget(pages: (64 << 20) / 4096 + 1)
                refusal.withLock { $0 = "accepted" }
            } catch {
                refusal.withLock { $0 = "\(error)" }
            }
            vm.stop()
        })
        #expect(refusal.withLock { $0 } == "balloon target 16385 pages is larger than guest RAM (16384 pages)")
        let plain = try GuestKit.boot("virtio-balloon.elf", timeout: 20)
        #expect(plain.outcome == .debugExit(status: 35))
        #expect(plain.output.contains("virtio-balloon: no such device on bus 0"), "\(plain.output)")
        #expect(throws: VMError.self) { try plain.vm.setBalloonTarget(pages: 1) }
    }

    @Test func theTargetSurvivesAGuestReboot() throws {
        let target = Mutex<UInt32?>(nil)
        let rebooted = Mutex(false)
        _ = try GuestKit.boot("i8042-reset.elf", onReboot: .restart, timeout: 60, configure: {
            $0.devices = [.balloon(BalloonSpec())]
        }, whileRunning: { vm, console in
            // Between boots the VM briefly has no devices: retry.
            let deadline = Date().addingTimeInterval(20)
            while (try? vm.setBalloonTarget(pages: 100)) == nil && Date() < deadline { usleep(1000) }
            let boots = { console.text.components(separatedBy: "resetting").count - 1 }
            let seen = boots()
            while boots() < seen + 2 && Date() < deadline { usleep(1000) }
            rebooted.withLock { $0 = boots() >= seen + 2 }
            target.withLock { $0 = vm.balloonStatistics()?.targetPages }
            vm.stop()
        })
        #expect(rebooted.withLock { $0 }, "the guest must have been restarted at least once after the target was set")
        #expect(target.withLock { $0 } == 100)
    }

    @Test func consoleGuestWritesToTheHostAndEchoesHostInput() throws {
        let run = try GuestKit.boot("virtio-console.elf", timeout: 60, configure: { $0.devices = [.console] }, whileRunning: { vm, console in
            guard console.waitFor("virtio-console waiting for input", timeout: 30) else { return vm.stop() }
            var input = Array("ping from host\n".utf8)[...]
            let deadline = Date().addingTimeInterval(10)
            while !input.isEmpty && Date() < deadline {
                let n = input.withUnsafeBytes { vm.sendConsoleInput($0) }
                input = input.dropFirst(n)
                if n == 0 { usleep(10_000) }
            }
        })
        #expect(run.outcome == GuestKit.passStatus, "\(run.output)")
        #expect(run.output.contains("virtio-console 00:01.0 features 0x100000004"), "\(run.output)")
        #expect(run.output.contains("hello from hvc0\n"), "\(run.output)")
        #expect(run.output.contains("emerg\n"), "\(run.output)")
        #expect(run.output.contains("virtio-console got 15 bytes"), "\(run.output)")
        #expect(run.output.contains("echo: ping from host\n"), "\(run.output)")
    }
}
