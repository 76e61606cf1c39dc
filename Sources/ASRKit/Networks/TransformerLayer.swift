import CKernels
import Foundation

/// `<base>.encoder.layers.{n}`: one Transformer layer — multi-head self-attention and a feed-forward block, with
/// LayerNorm after each (post-LN: wav2vec2 base, HuBERT, data2vec-audio) or before each (stable pre-LN: large-lv60,
/// XLS-R, MMS). Activations are (frames, hidden), time-major.
struct TransformerLayer: Sendable {
    let hidden: Int, heads: Int
    /// `.attention.{q,k,v}_proj`, written side by side into one (frames × 3·hidden) matrix.
    let q: Linear, k: Linear, v: Linear
    let out: Linear                     // .attention.out_proj
    let attentionNorm: NormParameters   // .layer_norm
    let intermediate: Linear            // .feed_forward.intermediate_dense
    let output: Linear                  // .feed_forward.output_dense
    let finalNorm: NormParameters       // .final_layer_norm
    let activation: Activation          // hidden_act
    /// `.adapter_layer` (MMS): present in stable layers when `adapter_attn_dim` is set.
    var adapter: AttentionAdapter?
    /// `.attention.gru_rel_pos_*` (WavLM): the gate on the relative position bias.
    let positionGate: RelativePositionGate?

    init(loading loader: inout CheckpointLoader, _ key: String, _ c: Wav2Vec2Configuration, precision: Precision) throws {
        let h = c.hiddenSize
        hidden = h
        heads = c.numAttentionHeads
        q = try loader.linear(key + ".attention.q_proj", inFeatures: h, outFeatures: h, precision: precision)
        k = try loader.linear(key + ".attention.k_proj", inFeatures: h, outFeatures: h, precision: precision)
        v = try loader.linear(key + ".attention.v_proj", inFeatures: h, outFeatures: h, precision: precision)
        out = try loader.linear(key + ".attention.out_proj", inFeatures: h, outFeatures: h, precision: precision)
        attentionNorm = try loader.norm(key + ".layer_norm", channels: h, eps: c.layerNormEps)
        intermediate = try loader.linear(key + ".feed_forward.intermediate_dense", inFeatures: h, outFeatures: c.intermediateSize,
                                         precision: precision)
        output = try loader.linear(key + ".feed_forward.output_dense", inFeatures: c.intermediateSize, outFeatures: h,
                                   precision: precision)
        finalNorm = try loader.norm(key + ".final_layer_norm", channels: h, eps: c.layerNormEps)
        activation = Activation(name: c.hiddenAct)!  // validated with the configuration
        positionGate = c.family == .wavLM
            ? try RelativePositionGate(loading: &loader, key + ".attention", heads: heads, headDim: h / heads) : nil
        if let dim = c.adapterAttnDim, c.doStableLayerNorm {
            adapter = try AttentionAdapter(loading: &loader, key + ".adapter_layer", hidden: h, inner: dim)
        } else {
            adapter = nil
        }
    }

    /// Multi-head self-attention: (frames, hidden) → (frames, hidden).
    /// Multi-head self-attention, (frames, hidden) → (frames, hidden). `positions` is WavLM's relative position
    /// table for these frames (``RelativePositionBuckets/table(frames:)``); with it, each head's scores get the gated
    /// bias before the softmax, on the BLAS path (the fused kernel takes no bias).
    func attention(_ x: Matrix, fused requestedFused: Bool, positions: [Float]? = nil) -> Matrix {
        let t = x.rows, h = hidden
        let d = h / heads
        let scale = 1 / Float(d).squareRoot()
        let bias = positionGate.flatMap { gate in positions.map { AttentionBias(gates: gate.gates(x), table: $0) } }
        let fused = requestedFused && bias == nil
        // Q, K and V one after the other, each (t, h).
        let qkv = Matrix.attentionProjections(q: q, k: k, v: v, queryKeyInput: x, valueInput: x)
        var context = Matrix(uninitializedRows: t, cols: h)   // (t, h): heads side by side, each written once
        // Heads run in parallel, each worker with its own scratch: the fused kernel's packed operands, or a (t, t)
        // score matrix for the BLAS path.
        let workers = max(1, min(BLAS.threads, heads))
        // A reduced-precision model takes its scores in bf16 too where the CPU has bf16 dot products.
        let bf16Scores = fused && ReducedPrecisionKernels.attentionScores(for: q.weight.precision) == .bf16
        let perWorker = fused ? (bf16Scores ? asr_attention_workspace_bf16(t, d) : asr_attention_workspace(t, d)) : t * t
        var scratch = [Float](unsafeUninitializedCapacity: workers * perWorker) { _, count in count = workers * perWorker }
        qkv.storage.withUnsafeBufferPointer { qkvData in
            context.storage.withUnsafeMutableBufferPointer { ctx in
                scratch.withUnsafeMutableBufferPointer { allScratch in
                    let (input, output, scratchBase) = (SharedPointer(base: UnsafeMutablePointer(mutating: qkvData.baseAddress!)),
                                                        SharedPointer(base: ctx.baseAddress!), SharedPointer(base: allScratch.baseAddress!))
                    DispatchQueue.concurrentPerform(iterations: workers) { worker in
                        let s = scratchBase.base + worker * perWorker
                        for head in stride(from: worker, to: heads, by: workers) {
                            let q = input.base + head * d, k = q + t * h, v = q + 2 * t * h, out = output.base + head * d
                            if fused {
                                // context[:, head] (t, d) = softmax(scale · Q_h · K_hᵀ) · V_h, scores kept per query block
                                if bf16Scores {
                                    asr_attention_head_bf16(t, d, q, k, v, h, scale, out, h, s)
                                } else {
                                    asr_attention_head(t, d, q, k, v, h, scale, out, h, s)
                                }
                                continue
                            }
                            // scores (t, t) = scale · Q_h · K_hᵀ
                            BLAS.gemm(m: t, n: t, k: d, a: q, lda: h, b: k, ldb: h, transposeB: true,
                                      c: s, ldc: t, alpha: scale, split: false)
                            bias?.add(head: head, to: s, frames: t)
                            VectorMath.softmaxRows(UnsafeMutableBufferPointer(start: s, count: t * t), rows: t, cols: t)
                            // context[:, head] (t, d) = P · V_h
                            BLAS.gemm(m: t, n: d, k: t, a: s, lda: t, b: v, ldb: h, transposeB: false,
                                      c: out, ldc: h, split: false)
                        }
                    }
                }
            }
        }
        return out(context)
    }

    func feedForward(_ x: Matrix) -> Matrix {
        let inner = intermediate(x, activation: activation)   // (t, intermediate), activation applied per row block
        return output(inner)                                  // (t, hidden)
    }

    /// Post-LN layer (base): x = LN(x + Attn(x)); x = FinalLN(x + FFN(x)).
    func postNorm(_ x: inout Matrix, fusedAttention: Bool, positions: [Float]?, profile: StageProfile?, clock: StageClock?) {
        x.add(attention(x, fused: fusedAttention, positions: positions))
        clock?.lap(into: profile, \.attention)
        attentionNorm.layerNorm(&x)
        clock?.lap(into: profile, \.norms)
        x.add(feedForward(x))
        clock?.lap(into: profile, \.feedForward)
        finalNorm.layerNorm(&x)
        clock?.lap(into: profile, \.norms)
    }

    /// Stable pre-LN layer (large-lv60, XLS-R, MMS): x = x + Attn(LN(x)); x = x + FFN(FinalLN(x)); then, with an MMS
    /// adapter, x = x + Adapter(x).
    func preNorm(_ x: inout Matrix, fusedAttention: Bool, positions: [Float]?, profile: StageProfile?, clock: StageClock?) {
        let attentionInput = attentionNorm.normalized(x)
        clock?.lap(into: profile, \.norms)
        x.add(attention(attentionInput, fused: fusedAttention, positions: positions))
        clock?.lap(into: profile, \.attention)
        let feedForwardInput = finalNorm.normalized(x)
        clock?.lap(into: profile, \.norms)
        x.add(feedForward(feedForwardInput))
        clock?.lap(into: profile, \.feedForward)
        if let adapter {
            x.add(adapter(x))
            clock?.lap(into: profile, \.feedForward)
        }
    }
}

/// `.adapter_layer` of an MMS layer (Wav2Vec2AttnAdapterLayer): Linear(ReLU(Linear(LayerNorm(x)))), added to the
/// layer's output. Each language has its own, with its own CTC head, in `adapter.<lang>.safetensors`.
struct AttentionAdapter: Sendable {
    let norm: NormParameters   // .norm (nn.LayerNorm default eps)
    let down: Linear           // .linear_1: hidden → adapter_attn_dim
    let up: Linear             // .linear_2: adapter_attn_dim → hidden

    init(loading loader: inout CheckpointLoader, _ key: String, hidden: Int, inner: Int) throws {
        norm = try loader.norm(key + ".norm", channels: hidden, eps: 1e-5)
        // Small (hidden × 16 for MMS) and swapped per language: always fp32.
        down = try loader.linear(key + ".linear_1", inFeatures: hidden, outFeatures: inner)
        up = try loader.linear(key + ".linear_2", inFeatures: inner, outFeatures: hidden)
    }

    /// (frames, hidden) → (frames, hidden)
    func callAsFunction(_ x: Matrix) -> Matrix {
        let inner = down(norm.normalized(x), activation: .relu)   // (frames, adapter_attn_dim)
        return up(inner)
    }
}
