import Foundation

/// A pointer handed to worker threads that each touch a disjoint part of what it points to.
struct SharedPointer<Element>: @unchecked Sendable {  // callers guarantee the parts are disjoint
    let base: UnsafeMutablePointer<Element>
}

/// Work between the matrix products (norms, activations, im2col copies) split across the same threads as the
/// products, so the second core does not idle while one core runs it.
enum Parallel {
    /// Runs `body` on contiguous ranges covering [0, count), one per thread (`BLAS.threads`), concurrently; on the
    /// calling thread alone when a part would get fewer than `minimumPerPart` items. Range starts are multiples of
    /// `alignment`.
    static func ranges(_ count: Int, minimumPerPart: Int, alignment: Int = 1, _ body: @Sendable (Range<Int>) -> Void) {
        _ = sum(count, minimumPerPart: minimumPerPart, alignment: alignment) { range in body(range); return 0 }
    }

    /// Like `ranges`, adding up what `body` returns for each range.
    static func sum(_ count: Int, minimumPerPart: Int, alignment: Int = 1, _ body: @Sendable (Range<Int>) -> Int) -> Int {
        let parts = min(BLAS.threads, count / max(1, minimumPerPart))
        guard parts >= 2 else { return body(0..<count) }
        let size = ((count + parts - 1) / parts + alignment - 1) / alignment * alignment
        let results = SharedPointer(base: UnsafeMutablePointer<Int>.allocate(capacity: parts))
        defer { results.base.deallocate() }
        results.base.initialize(repeating: 0, count: parts)
        DispatchQueue.concurrentPerform(iterations: parts) { part in
            let start = part * size
            if start < count { results.base[part] = body(start..<min(count, start + size)) }
        }
        return (0..<parts).reduce(0) { $0 + results.base[$1] }
    }
}
