import ASRKit
import Foundation

/// One shard of a batch: shard `index` of `count` (`--shard K/N`). Every process of an array job computes the same
/// partition from the same inputs, so each input is transcribed by exactly one shard, with no coordinator.
package struct Shard: Equatable, Sendable, CustomStringConvertible {
    package let index: Int
    package let count: Int

    package init(index: Int, count: Int) throws {
        guard count >= 1 else { throw ShardError("the shard count must be at least 1 (got \(count))") }
        guard (0..<count).contains(index) else {
            throw ShardError("shard \(index) of \(count) does not exist (K must be 0…\(count - 1))")
        }
        self.index = index
        self.count = count
    }

    package var description: String { "\(index)/\(count)" }

    /// `K/N`, or `auto`: K and N from the scheduler's environment (see `fromEnvironment`).
    package static func parse(_ text: String, shardCount: Int?, environment: [String: String]) throws -> Shard {
        if text == "auto" { return try fromEnvironment(environment, shardCount: shardCount) }
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let k = Int(parts[0]), let n = Int(parts[1]) else {
            throw ShardError("--shard \(text): give K/N (shard K of N, K from 0) or auto")
        }
        if let shardCount, shardCount != n {
            throw ShardError("--shard \(text) and --shard-count \(shardCount) disagree")
        }
        return try Shard(index: k, count: n)
    }

    /// The shard of this process from the scheduler:
    /// - Slurm job arrays: K = (SLURM_ARRAY_TASK_ID − SLURM_ARRAY_TASK_MIN) / SLURM_ARRAY_TASK_STEP (step 1 when
    ///   unset), N = SLURM_ARRAY_TASK_COUNT (or `--shard-count`). `--array=0-15`, `--array=1-16` and `--array=0-30:2`
    ///   all give shards 0…15 of 16; a throttle (`%4`) changes nothing.
    /// - Kubernetes Indexed Jobs: K = JOB_COMPLETION_INDEX, N = `--shard-count` (the Job's `completions`).
    package static func fromEnvironment(_ environment: [String: String], shardCount: Int?) throws -> Shard {
        func number(_ name: String) throws -> Int? {
            guard let text = environment[name], !text.isEmpty else { return nil }
            guard let value = Int(text) else { throw ShardError("\(name)=\(text) is not a whole number") }
            return value
        }
        if let id = try number("SLURM_ARRAY_TASK_ID") {
            guard let min = try number("SLURM_ARRAY_TASK_MIN") else {
                throw ShardError("--shard auto: SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_MIN is not")
            }
            let step = try number("SLURM_ARRAY_TASK_STEP") ?? 1
            guard let count = try shardCount ?? number("SLURM_ARRAY_TASK_COUNT") else {
                throw ShardError("--shard auto: SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not (or give --shard-count N)")
            }
            guard step >= 1, (id - min) % step == 0 else {
                throw ShardError("--shard auto: SLURM_ARRAY_TASK_ID=\(id) is not on the array's step (min \(min), step \(step)); use --array=A-B[:S]")
            }
            do { return try Shard(index: (id - min) / step, count: count) } catch let error as ShardError {
                throw ShardError("--shard auto (Slurm array task \(id), min \(min), count \(count)): \(error.message); use a plain range --array=A-B")
            }
        }
        if let index = try number("JOB_COMPLETION_INDEX") {
            guard let count = shardCount else {
                throw ShardError("--shard auto: JOB_COMPLETION_INDEX is set (Kubernetes Indexed Job) but --shard-count N is not given (N = the Job's completions)")
            }
            do { return try Shard(index: index, count: count) } catch let error as ShardError {
                throw ShardError("--shard auto (JOB_COMPLETION_INDEX=\(index)): \(error.message)")
            }
        }
        throw ShardError("--shard auto: no scheduler found: set SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_MIN and SLURM_ARRAY_TASK_COUNT (a Slurm array task), or JOB_COMPLETION_INDEX with --shard-count N (a Kubernetes Indexed Job), or give --shard K/N")
    }
}

package struct ShardError: Error, CustomStringConvertible {
    package let message: String
    package init(_ message: String) { self.message = message }
    package var description: String { message }
}

/// The partition of a batch's inputs over N shards.
///
/// Inputs are keyed by path and weighted by size in bytes. Greedy longest-processing-time: the inputs, largest first
/// (ties by path), each go to the shard with the fewest bytes so far (ties: the lowest shard). It depends only on the
/// set of (path, size) pairs, not on their order on the command line, so every process computes the same shards; the
/// largest shard is at most 4/3 of the optimum, and at most the mean plus the largest single file.
package enum Partition {
    package struct Input: Equatable, Sendable {
        package let path: String
        package let bytes: Int64
        package init(path: String, bytes: Int64) {
            self.path = path
            self.bytes = bytes
        }
    }

    /// The shard (0..<count) of every input, in the order given.
    package static func assign(_ inputs: [Input], count: Int) -> [Int] {
        precondition(count >= 1)
        let order = inputs.indices.sorted {
            let a = inputs[$0], b = inputs[$1]
            if a.bytes != b.bytes { return a.bytes > b.bytes }
            if a.path != b.path { return a.path < b.path }
            return $0 < $1
        }
        var load = [Int64](repeating: 0, count: count)
        var result = [Int](repeating: 0, count: inputs.count)
        for index in order {
            var best = 0
            for shard in 1..<count where load[shard] < load[best] { best = shard }
            result[index] = best
            // Empty files still count a little, so a folder of empty or tiny files is spread too.
            load[best] += max(inputs[index].bytes, 1)
        }
        return result
    }

    /// The indices of the inputs that `shard` takes, in the order given.
    package static func select(_ inputs: [Input], shard: Shard) -> [Int] {
        let assigned = assign(inputs, count: shard.count)
        return inputs.indices.filter { assigned[$0] == shard.index }
    }

    /// A fingerprint of the whole input set (paths and sizes, order-independent): shards of one partition carry the
    /// same one, so manifests of different corpora or changed files are not merged as one. FNV-1a, 64 bits, hex.
    package static func fingerprint(_ inputs: [Input]) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for input in inputs.sorted(by: { $0.path != $1.path ? $0.path < $1.path : $0.bytes < $1.bytes }) {
            for byte in Array(input.path.utf8) + [0] + Array(String(input.bytes).utf8) + [10] {
                hash ^= UInt64(byte)
                hash = hash &* 0x100_0000_01b3
            }
        }
        return String(format: "%016llx", hash)
    }
}
