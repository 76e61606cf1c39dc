import CBLAS
import Foundation

/// The one place that talks to OpenBLAS. All matrices are row-major Float.
package enum BLAS {
    /// Kernel selection happens once, before the first matrix product (see `selectFastestKernel`).
    private static let setup: KernelSelection = {
        let selection = selectFastestKernel()
        openblas_set_num_threads(1)   // we split products across threads ourselves (see splitThreads)
        return selection
    }()

    /// What OpenBLAS runs on, and whether we had to override its own choice.
    package struct KernelSelection: Sendable, Equatable {
        /// The kernel OpenBLAS picked by itself when it loaded.
        package let detected: String
        /// The kernel in use now.
        package let active: String
        /// Why we changed it, or nil when OpenBLAS's own choice was kept.
        package let override: String?
    }

    /// Makes sure the kernel choice has happened and reports it.
    @discardableResult
    package static func initialize() -> KernelSelection { setup }

    /// The OpenBLAS kernel in use ("SkylakeX", "Haswell", ...).
    package static var kernel: String { initialize().active }

    /// Threads one product is split across.
    package static var threads: Int {
        get { initialize(); return ThreadBudget.current ?? splitThreads.value }
    }

    /// Products are split by rows across our own threads, each calling single-threaded OpenBLAS. OpenBLAS's own
    /// workers spin in sched_yield between products, taking a core from the code that runs between them (softmax,
    /// norms, activations); measured on 2 cores: 17 % of the run in the scheduler.
    private static let splitThreads = AtomicCount(Int(openblas_get_num_procs()))

    /// Sets the number of threads for the whole process (0 or less: all cores).
    package static func setThreads(_ count: Int) {
        initialize()
        splitThreads.value = max(1, count > 0 ? count : Int(openblas_get_num_procs()))
    }

    /// The OpenBLAS build string (version and build options).
    package static var configuration: String {
        guard let config = openblas_get_config() else { return "unknown" }
        return String(cString: config).trimmingCharacters(in: .whitespaces)
    }

    /// Debian's OpenBLAS (0.3.21) picks its kernel from a table of CPU models; on a CPU newer than that table it
    /// falls back to the SSE3 "Prescott" kernels, about 6× slower than the AVX-512 ones. When the user has not
    /// chosen a kernel (OPENBLAS_CORETYPE unset) and the CPU has the instructions of a better kernel than the one
    /// picked, we name that kernel and let the dynamic build choose again, before any product has run.
    static func selectFastestKernel() -> KernelSelection {
        let detected = currentKernel()
        guard ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil,
              let best = bestKernelForThisCPU(),
              kernelRank(detected) < kernelRank(best.name)
        else { return KernelSelection(detected: detected, active: detected, override: nil) }

        let reselected = kernelSwitch.withWriteLock {
            setenv("OPENBLAS_CORETYPE", best.name, 1)
            defer { unsetenv("OPENBLAS_CORETYPE") }
            return asr_openblas_reselect_kernel() != 0
        }
        let active = currentKernel()
        guard reselected, active != detected else {
            return KernelSelection(detected: detected, active: active, override: nil)
        }
        return KernelSelection(
            detected: detected, active: active,
            override: "OpenBLAS chose \(detected) for this CPU; it supports \(best.reason), so \(active) is used")
    }

    /// Makes OpenBLAS use `name` (e.g. "PRESCOTT"), as if it had picked it when it loaded. For tests.
    static func forceKernel(_ name: String) {
        kernelSwitch.withWriteLock {
            setenv("OPENBLAS_CORETYPE", name, 1)
            _ = asr_openblas_reselect_kernel()
            unsetenv("OPENBLAS_CORETYPE")
        }
    }

    /// Products hold this for reading; swapping the kernel table holds it for writing, so a product never runs
    /// while OpenBLAS's kernel pointers change under it.
    private static let kernelSwitch = ReadWriteLock()

    static func currentKernel() -> String {
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name)
    }

    /// Coarse speed order of OpenBLAS's x86-64 single-precision kernels.
    private static func kernelRank(_ name: String) -> Int {
        switch name.uppercased() {
        case "SKYLAKEX", "COOPERLAKE", "SAPPHIRERAPIDS": return 3
        case "HASWELL", "ZEN": return 2
        case "SANDYBRIDGE", "BULLDOZER", "PILEDRIVER", "STEAMROLLER", "EXCAVATOR": return 1
        default: return 0
        }
    }

    /// The best kernel the CPU's instruction set allows, read from /proc/cpuinfo (Linux, x86-64 only).
    static func bestKernelForThisCPU() -> (name: String, reason: String)? {
        #if arch(x86_64) && os(Linux)
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let flagsLine = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") })
        else { return nil }
        let flags = Set(flagsLine.split(separator: " ").map(String.init))
        if ["avx512f", "avx512bw", "avx512vl", "avx512dq"].allSatisfy(flags.contains) {
            return ("SKYLAKEX", "AVX-512")
        }
        if ["avx2", "fma"].allSatisfy(flags.contains) { return ("HASWELL", "AVX2 and FMA") }
        return nil
        #else
        return nil
        #endif
    }

    // MARK: Products

    /// C (m×n) = alpha · A (m×k) · op(B) + beta · C, where op(B) is B (k×n) or, with `transposeB`, Bᵀ for B stored
    /// n×k (PyTorch's Linear weight layout). Leading dimensions are row strides in elements.
    @inline(__always)
    static func gemm(
        m: Int, n: Int, k: Int,
        a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int, transposeB: Bool,
        c: UnsafeMutablePointer<Float>, ldc: Int,
        alpha: Float = 1, beta: Float = 0, split: Bool = true
    ) {
        gemm(m: m, n: n, k: k, a: a, lda: lda, transposeA: false, b: b, ldb: ldb, transposeB: transposeB,
             c: c, ldc: ldc, alpha: alpha, beta: beta, split: split)
    }

    /// General form with an optional transposed A (stored k×m). `split: false` runs on the calling thread only (for
    /// callers that already run products in parallel).
    static func gemm(
        m: Int, n: Int, k: Int,
        a: UnsafePointer<Float>, lda: Int, transposeA: Bool,
        b: UnsafePointer<Float>, ldb: Int, transposeB: Bool,
        c: UnsafeMutablePointer<Float>, ldc: Int,
        alpha: Float = 1, beta: Float = 0, split: Bool = true
    ) {
        _ = setup
        guard m > 0, n > 0 else { return }
        if k == 0 {
            // BLAS leaves C untouched only when beta == 1; make the empty product explicit.
            for i in 0..<m { for j in 0..<n { c[i * ldc + j] *= beta } }
            return
        }
        kernelSwitch.withReadLock {
            // Rows [r0, r0 + rows) of C; parts write disjoint rows.
            let (sharedA, sharedB, sharedC) = (SharedPointer(base: UnsafeMutablePointer(mutating: a)),
                                               SharedPointer(base: UnsafeMutablePointer(mutating: b)), SharedPointer(base: c))
            @Sendable func product(from r0: Int, rows: Int) {
                let (a, b, c) = (sharedA.base, sharedB.base, sharedC.base)
                cblas_sgemm(
                    CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                    Int32(rows), Int32(n), Int32(k), alpha, transposeA ? a + r0 : a + r0 * lda, Int32(lda),
                    b, Int32(ldb), beta, c + r0 * ldc, Int32(ldc))
            }
            forEachRowBlock(m: m, n: n, k: k, split: split, product)
        }
    }

    /// Splits the rows of an (m × k) · (k × n) product across `threads` threads, calling `body(firstRow, rows)` once
    /// per block (on the calling thread alone when `split` is false or the product is small). Blocks are multiples
    /// of 16 rows so each part's packing stays aligned to the kernels' tiles. Shared by every product path (fp32
    /// BLAS, bf16, int8).
    static func forEachRowBlock(m: Int, n: Int, k: Int, split: Bool, _ body: @Sendable (_ firstRow: Int, _ rows: Int) -> Void) {
        guard m > 0, n > 0 else { return }
        let parts = split ? min(threads, m / 32) : 1
        if parts < 2 || m * n * k < 1 << 21 { return body(0, m) }
        let block = ((m + parts - 1) / parts + 15) / 16 * 16
        DispatchQueue.concurrentPerform(iterations: parts) { part in
            let r0 = part * block
            if r0 < m { body(r0, min(block, m - r0)) }
        }
    }
}

/// An integer read and written from any thread.
final class AtomicCount: @unchecked Sendable {  // the lock is the synchronisation
    private var stored: Int
    private let lock = NSLock()
    init(_ value: Int) { stored = value }
    var value: Int {
        get { lock.lock(); defer { lock.unlock() }; return stored }
        set { lock.lock(); stored = newValue; lock.unlock() }
    }
}

/// A pthread read-write lock.
final class ReadWriteLock: @unchecked Sendable {  // the pthread lock is the synchronisation
    private let lock: UnsafeMutablePointer<pthread_rwlock_t>

    init() {
        lock = .allocate(capacity: 1)
        pthread_rwlock_init(lock, nil)
    }

    deinit {
        pthread_rwlock_destroy(lock)
        lock.deallocate()
    }

    func withReadLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_rwlock_rdlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }

    func withWriteLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_rwlock_wrlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }
}
