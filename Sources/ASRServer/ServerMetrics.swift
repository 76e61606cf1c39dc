import CoreMetrics
import Foundation
import NIOConcurrencyHelpers
import Metrics
import Prometheus

/// The server's metrics through swift-metrics, kept in a Prometheus registry of the server's own (no global
/// bootstrap: several servers can live in one process, as in the tests) and served at /metrics.
package final class ServerMetrics: Sendable {
    let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory
    private let realtimeOpen = NIOLockedValueBox(0)
    private let audioSeconds: CoreMetrics.FloatingPointCounter
    private let realTimeFactor: CoreMetrics.Recorder
    private let requestSeconds: CoreMetrics.Recorder
    private let queueDepth: CoreMetrics.Gauge
    private let inFlight: CoreMetrics.Gauge
    private let running: CoreMetrics.Gauge
    private let abandonedRequests: CoreMetrics.Counter

    init() {
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.valueHistogramBuckets["asr_real_time_factor"] = [0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 5]
        factory.valueHistogramBuckets["asr_request_duration_seconds"] = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300]
        self.factory = factory
        audioSeconds = CoreMetrics.FloatingPointCounter(label: "asr_audio_seconds_total", factory: factory)
        realTimeFactor = CoreMetrics.Recorder(label: "asr_real_time_factor", aggregate: true, factory: factory)
        requestSeconds = CoreMetrics.Recorder(label: "asr_request_duration_seconds", aggregate: true, factory: factory)
        queueDepth = CoreMetrics.Gauge(label: "asr_queue_depth", factory: factory)
        inFlight = CoreMetrics.Gauge(label: "asr_in_flight_requests", factory: factory)
        running = CoreMetrics.Gauge(label: "asr_forward_passes_running", factory: factory)
        abandonedRequests = CoreMetrics.Counter(label: "asr_abandoned_requests_total", factory: factory)
        queueDepth.record(0)
        inFlight.record(0)
        running.record(0)
        audioSeconds.increment(by: 0)
        abandonedRequests.increment(by: 0)
    }

    /// A request whose work stopped because its client left (or the drain deadline passed).
    func abandoned() { abandonedRequests.increment() }
    /// Realtime sessions opened (+1) or closed (−1).
    func realtimeSessions(by change: Int) {
        let value = realtimeOpen.withLockedValue { $0 += change; return $0 }
        CoreMetrics.Gauge(label: "asr_realtime_sessions", factory: factory).record(value)
    }

    /// A request stopped at the compute-time limit.
    func timedOut() {
        CoreMetrics.Counter(label: "asr_compute_time_exceeded_total", factory: factory).increment()
    }

    /// One answered request.
    func request(endpoint: String, status: Int, seconds: Double) {
        CoreMetrics.Counter(label: "asr_http_requests_total", dimensions: [("endpoint", endpoint), ("status", String(status))], factory: factory)
            .increment()
        requestSeconds.record(seconds)
    }

    /// One transcription: its audio length and compute time.
    func transcribed(audioSeconds audio: Double, computeSeconds: Double) {
        audioSeconds.increment(by: audio)
        if audio > 0 { realTimeFactor.record(computeSeconds / audio) }
    }

    /// Admission changed: `admitted` transcription requests in the server, `running` of them in a forward pass.
    func admission(admitted: Int, running passes: Int) {
        inFlight.record(admitted)
        running.record(passes)
        queueDepth.record(admitted - passes)
    }

    /// Prometheus text exposition.
    func exposition() -> [UInt8] { registry.emitToBuffer() }
}
