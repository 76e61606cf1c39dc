import Foundation

/// A grouped Conv1d over time that keeps the length: the positional convolution of every family (wav2vec2's one
/// weight-normed layer `encoder.pos_conv_embed.conv`, data2vec-audio's stack `encoder.pos_conv_embed.layers.{i}.conv`).
struct GroupedTimeConvolution: Sendable {
    let channels: Int, kernel: Int, groups: Int
    /// The kernel reordered to (out, kernel · in-per-group): one matrix per group.
    let weights: [WeightMatrix]
    let bias: [Float]

    /// `kernel` is the checkpoint's (out = channels, in = channels / groups, K) tensor, weight norm already folded.
    init(kernel raw: [Float], bias: [Float], channels: Int, kernel: Int, groups: Int, precision: Precision) {
        let perGroup = channels / groups
        let reordered = CheckpointLoader.reorderConvKernel(raw, out: channels, in: perGroup, kernel: kernel)
        let groupSize = perGroup * kernel * perGroup
        self.channels = channels
        self.kernel = kernel
        self.groups = groups
        weights = (0..<groups).map { g in
            WeightMatrix(FloatStorage(copying: Array(reordered[(g * groupSize)..<((g + 1) * groupSize)])),
                         n: perGroup, k: kernel * perGroup, precision: precision)
        }
        self.bias = bias
    }

    /// The positional convolution's products are narrow (48 or 64 output channels per group, K = 128 · that):
    /// oneDNN's int8 GEMM packs its operands for each such product, which made that stage 2.3× slower than fp32
    /// (base, 10 s: 0.107 s vs 0.046 s), while bf16 halves it. So int8 runs it in bf16 where the CPU has bf16 dot
    /// products, else in fp32.
    static func precision(for precision: Precision) -> Precision {
        guard precision == .int8 else { return precision }
        return ReducedPrecisionKernels.bf16Native ? .bf16 : .fp32
    }

    /// Grouped Conv1d(x) plus bias, padding K/2 on both sides; for even K the extra last frame is dropped
    /// (Wav2Vec2SamePadLayer). (frames, channels) → (frames, channels).
    func callAsFunction(_ x: Matrix) -> Matrix {
        let p = self
        let t = x.rows, h = p.channels, perGroup = h / p.groups, k = p.kernel
        let pad = k / 2
        let paddedRows = t + 2 * pad
        let window = k * perGroup
        var y = Matrix(uninitializedRows: t, cols: h)  // filled with the bias below

        // Each group's channels, zero-padded in time and laid out contiguously: (groups, t + 2·pad, perGroup).
        var grouped = [Float](repeating: 0, count: p.groups * paddedRows * perGroup)
        x.storage.withUnsafeBufferPointer { input in
            grouped.withUnsafeMutableBufferPointer { g in
                for r in 0..<t {
                    for group in 0..<p.groups {
                        (g.baseAddress! + (group * paddedRows + pad + r) * perGroup).update(
                            from: input.baseAddress! + r * h + group * perGroup, count: perGroup)
                    }
                }
            }
        }
        // Groups are spread over the threads. fp32 copies each group's windows (im2col, ~16 MB of scratch in all) for
        // BLAS; bf16/int8 convert the rows themselves and so read the overlapping windows in place, no scratch.
        let workers = max(1, min(BLAS.threads, p.groups))
        let inPlace = p.weights[0].readsOverlappingRows   // one precision for every group
        let blockRows = max(1, min(t, (4 << 20) / window / workers))
        y.storage.withUnsafeMutableBufferPointer { out in
            out.baseAddress!.fillRows(t, stride: h, with: p.bias)
            grouped.withUnsafeBufferPointer { g in
                let (groupedInput, outputs) = (SharedPointer(base: UnsafeMutablePointer(mutating: g.baseAddress!)),
                                               SharedPointer(base: out.baseAddress!))
                DispatchQueue.concurrentPerform(iterations: workers) { worker in
                    let groups = stride(from: worker, to: p.groups, by: workers)
                    if inPlace {
                        for group in groups {
                            p.weights[group].multiply(m: t, a: groupedInput.base + group * paddedRows * perGroup, lda: perGroup,
                                                      into: outputs.base + group * perGroup, ldc: h, accumulate: true, split: false)
                        }
                        return
                    }
                    var columns = [Float](unsafeUninitializedCapacity: blockRows * window) { _, n in n = blockRows * window }
                    columns.withUnsafeMutableBufferPointer { cols in
                        for group in groups {
                            let groupBase = groupedInput.base + group * paddedRows * perGroup
                            var t0 = 0
                            while t0 < t {
                                let rows = min(blockRows, t - t0)
                                cols.baseAddress!.copyWindows(from: groupBase + t0 * perGroup, rowStep: perGroup,
                                                              window: window, rows: rows)
                                // (rows, K·perGroup) · (perGroup_out, K·perGroup)ᵀ → y[t0..., group's channels]
                                p.weights[group].multiply(m: rows, a: cols.baseAddress!, lda: window,
                                                          into: outputs.base + t0 * h + group * perGroup, ldc: h,
                                                          accumulate: true, split: false)
                                t0 += rows
                            }
                        }
                    }
                }
            }
        }
        return y
    }
}
