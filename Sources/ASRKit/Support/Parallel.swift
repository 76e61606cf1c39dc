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
        forEachPart(count, minimumPerPart: minimumPerPart, alignment: alignment) { _, range in body(range) }
    }

    /// Like `ranges`, adding up what `body` returns for each range.
    static func sum(_ count: Int, minimumPerPart: Int, alignment: Int = 1, _ body: @Sendable (Range<Int>) -> Int) -> Int {
        var results = [Int](repeating: 0, count: BLAS.threads)
        results.withUnsafeMutableBufferPointer { buffer in
            let slots = SharedPointer(base: buffer.baseAddress!)
            forEachPart(count, minimumPerPart: minimumPerPart, alignment: alignment) { part, range in
                slots.base[part] = body(range)
            }
        }
        return results.reduce(0, +)
    }

    /// The split itself: `body(part, range)` for part 0, 1, … (fewer than `BLAS.threads`).
    private static func forEachPart(_ count: Int, minimumPerPart: Int, alignment: Int,
                                    _ body: @Sendable (Int, Range<Int>) -> Void) {
        let parts = min(BLAS.threads, count / max(1, minimumPerPart))
        guard parts >= 2 else { return body(0, 0..<count) }
        let size = ((count + parts - 1) / parts + alignment - 1) / alignment * alignment
        DispatchQueue.concurrentPerform(iterations: parts) { part in
            let start = part * size
            if start < count { body(part, start..<min(count, start + size)) }
        }
    }
}
