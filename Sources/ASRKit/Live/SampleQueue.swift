import Foundation

/// A bounded queue of sample buffers between producers (``LiveTranscription/append(_:)``) and the one consumer (the
/// results' iterator). A producer waits while the queue holds `capacity` samples or more, so a consumer that lags
/// holds the producer back instead of letting memory grow; cancelling the consumer fails every producer.
final class SampleQueue: @unchecked Sendable {
    private struct Waiter {
        let id: Int
        let samples: [Float]
        let continuation: CheckedContinuation<Void, Error>
    }

    let capacity: Int
    private let lock = NSLock()
    private var buffers: [[Float]] = []
    private var head = 0
    private var queued = 0
    private var finished = false
    private var closed: Error?
    private var producers: [Waiter] = []
    private var nextID = 0
    private var consumer: CheckedContinuation<[Float]?, Error>?
    /// The most samples ever queued (for tests and diagnostics).
    private(set) var peak = 0
    private var chunks = 0

    /// Chunks the model has run for this transcription (for tests: work stops when the iteration is cancelled).
    var chunksRun: Int { lock.withLock { chunks } }
    func countChunk() { lock.withLock { chunks += 1 } }

    init(capacity: Int) { self.capacity = max(1, capacity) }

    private func admit(_ samples: [Float]) {
        buffers.append(samples)
        queued += samples.count
        peak = max(peak, queued)
    }

    /// Queues `samples`, waiting for room first. Throws `CancellationError` when the calling task or the consumer
    /// is cancelled, or the results were abandoned.
    func push(_ samples: [Float]) async throws {
        guard !samples.isEmpty else { return }
        let id: Int = lock.withLock { nextID += 1; return nextID }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
                lock.lock()
                if let closed {
                    lock.unlock()
                    continuation.resume(throwing: closed)
                    return
                }
                precondition(!finished, "LiveTranscription.append called after finish()")
                if Task.isCancelled {
                    lock.unlock()
                    continuation.resume(throwing: CancellationError())
                    return
                }
                if producers.isEmpty && (queued == 0 || queued + samples.count <= capacity) {
                    admit(samples)
                    let waiting = consumer
                    consumer = nil
                    let buffer = waiting != nil ? pop() : nil
                    lock.unlock()
                    waiting?.resume(returning: buffer)
                    continuation.resume()
                } else {
                    producers.append(Waiter(id: id, samples: samples, continuation: continuation))
                    lock.unlock()
                }
            }
        } onCancel: {
            lock.lock()
            let index = producers.firstIndex { $0.id == id }
            let waiter = index.map { producers.remove(at: $0) }
            lock.unlock()
            waiter?.continuation.resume(throwing: CancellationError())
        }
    }

    /// No more samples: the consumer gets nil once the queue is empty.
    func finish() {
        lock.lock()
        finished = true
        let waiting = buffers.count == head && producers.isEmpty ? consumer : nil
        if waiting != nil { consumer = nil }
        lock.unlock()
        waiting?.resume(returning: nil)
    }

    /// Fails every waiting and later producer and the consumer with `error`, and drops what is queued.
    func close(_ error: Error) {
        lock.lock()
        if closed == nil { closed = error }
        let waiters = producers
        producers = []
        buffers = []
        head = 0
        queued = 0
        let waiting = consumer
        consumer = nil
        lock.unlock()
        for waiter in waiters { waiter.continuation.resume(throwing: error) }
        waiting?.resume(throwing: error)
    }

    /// Takes the next buffer (lock held); admits waiting producers that now fit.
    private func pop() -> [Float]? {
        guard head < buffers.count else { return nil }
        let buffer = buffers[head]
        head += 1
        queued -= buffer.count
        if head > 64 && head * 2 > buffers.count {
            buffers.removeFirst(head)
            head = 0
        }
        return buffer
    }

    /// Producers whose samples now fit (lock held): their samples are queued, and they are returned to be resumed.
    private func admitWaiting() -> [Waiter] {
        var resumed: [Waiter] = []
        while let first = producers.first, queued == 0 || queued + first.samples.count <= capacity {
            producers.removeFirst()
            admit(first.samples)
            resumed.append(first)
        }
        return resumed
    }

    /// The next buffer, waiting for one; nil after `finish()` once everything queued has been taken.
    func next() async throws -> [Float]? {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[Float]?, Error>) in
                lock.lock()
                if let closed {
                    lock.unlock()
                    continuation.resume(throwing: closed)
                    return
                }
                if Task.isCancelled {
                    lock.unlock()
                    close(CancellationError())
                    continuation.resume(throwing: CancellationError())
                    return
                }
                var buffer = pop()
                var resumed = admitWaiting()
                if buffer == nil {
                    buffer = pop()
                    resumed += admitWaiting()
                }
                if buffer == nil && !finished {
                    precondition(consumer == nil, "a LiveTranscription is iterated by one task at a time")
                    consumer = continuation
                    lock.unlock()
                    for waiter in resumed { waiter.continuation.resume() }
                    return
                }
                lock.unlock()
                for waiter in resumed { waiter.continuation.resume() }
                continuation.resume(returning: buffer)
            }
        } onCancel: {
            close(CancellationError())
        }
    }
}
