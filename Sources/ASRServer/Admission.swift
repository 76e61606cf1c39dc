import Foundation
import NIOConcurrencyHelpers

/// Bounds the work in the server: at most `maxConcurrency` forward passes at once and at most `queueSize` more
/// requests admitted and waiting for a slot (admitted once their upload is complete: a slow upload holds no place).
/// Beyond that a request is refused at once (429) rather than queued without bound.
actor Admission {
    let maxConcurrency: Int
    let queueSize: Int
    private(set) var admitted = 0
    private(set) var running = 0
    private var waiters: [(id: ObjectIdentifier, continuation: CheckedContinuation<Void, any Error>)] = []
    /// Smoothed seconds per forward pass, for Retry-After.
    private var averageSeconds = 1.0
    private let onChange: @Sendable (_ admitted: Int, _ running: Int) -> Void

    init(maxConcurrency: Int, queueSize: Int, onChange: @escaping @Sendable (Int, Int) -> Void) {
        self.maxConcurrency = max(1, maxConcurrency)
        self.queueSize = max(0, queueSize)
        self.onChange = onChange
    }

    /// Admits a request, or returns the seconds after which to retry when the queue is full.
    func admit() -> Int? {
        guard admitted < maxConcurrency + queueSize else {
            // Time for the requests ahead to drain, rounded up; at least one second.
            let ahead = Double(admitted) / Double(maxConcurrency)
            return max(1, Int((ahead * averageSeconds).rounded(.up)))
        }
        admitted += 1
        onChange(admitted, running)
        return nil
    }

    /// A request leaves (answered or failed).
    func leave() {
        admitted -= 1
        onChange(admitted, running)
    }

    /// Waits for a forward-pass slot (first come, first served) for the request whose flag is `cancel`. A request
    /// that is abandoned while it waits (``cancelWaiter(_:)``: its client left; or its task cancelled) leaves the
    /// queue at once and throws `CancellationError`: no slot is taken for it.
    func acquire(for cancel: CancelFlag) async throws {
        if cancel.isSet { throw CancellationError() }
        if running < maxConcurrency && waiters.isEmpty {
            running += 1
            onChange(admitted, running)
            return
        }
        let id = ObjectIdentifier(cancel)
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                // (The flag may have been set between the check above and here: then no one will come for it.)
                if Task.isCancelled || cancel.isSet {
                    continuation.resume(throwing: CancellationError())
                } else {
                    waiters.append((id, continuation))
                }
            }
        } onCancel: {
            Task { await self.cancelWaiter(cancel) }
        }
    }

    /// Every request waiting for a slot leaves the queue with `CancellationError` (the drain deadline).
    func cancelWaiting() {
        let waiting = waiters
        waiters.removeAll()
        for waiter in waiting { waiter.continuation.resume(throwing: CancellationError()) }
    }

    /// The request whose flag is `cancel` leaves the queue, if it waits there.
    func cancelWaiter(_ cancel: CancelFlag) {
        guard let index = waiters.firstIndex(where: { $0.id == ObjectIdentifier(cancel) }) else { return }
        waiters.remove(at: index).continuation.resume(throwing: CancellationError())
    }

    /// Gives the slot back (to the next waiter, if any); `seconds` is how long the pass took.
    func release(seconds: Double?) {
        if let seconds { averageSeconds = 0.8 * averageSeconds + 0.2 * seconds }
        if waiters.isEmpty {
            running -= 1
            onChange(admitted, running)
        } else {
            waiters.removeFirst().continuation.resume()
        }
    }
}

/// Set when a request's work should stop (its client left, or the drain deadline passed); the forward pass checks it
/// between chunks.
final class CancelFlag: Sendable {
    private let value = NIOLockedValueBox(false)
    var isSet: Bool { value.withLockedValue { $0 } }
    func set() { value.withLockedValue { $0 = true } }
}

/// Thrown between chunks when a request's ``CancelFlag`` is set.
struct RequestCancelled: Error {}

/// Runs the forward passes on threads of their own, off the NIO event loops and off Swift's cooperative pool
/// (a pass holds its thread for seconds; BLAS and the model's workers use every core meanwhile).
enum ComputeThreads {
    private static let queue = DispatchQueue(label: "asr-serve.compute", qos: .userInitiated, attributes: .concurrent)

    static func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try work() }) }
        }
    }
}
