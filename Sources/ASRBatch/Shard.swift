import ASRKit
import Foundation

/// One shard of a batch: shard `index` of `count` (`--shard K/N`). Every process of an array job computes the same
/// partition from the same inputs, so each input is transcribed by exactly one shard, with no coordinator.
public struct Shard: Equatable, Sendable, CustomStringConvertible {
    /// K: which shard, from 0.
    public let index: Int
    /// N: how many shards the batch is split into.
    public let count: Int

    /// Shard `index` of `count`.
    ///
    /// - Throws: ``ShardError`` (``ShardError/Code/outOfRange``) unless `count` ≥ 1 and `index` is in 0..<count.
    public init(index: Int, count: Int) throws {
        guard count >= 1 else { throw ShardError(.outOfRange, "the shard count must be at least 1 (got \(count))") }
        guard (0..<count).contains(index) else {
            throw ShardError(.outOfRange, "shard \(index) of \(count) does not exist (K must be 0…\(count - 1))")
        }
        self.index = index
        self.count = count
    }

    /// `K/N`.
    public var description: String { "\(index)/\(count)" }

    /// `K/N`, or `auto`: K and N from the scheduler's environment (see `fromEnvironment`); `shardCount`, when given,
    /// is N (it must agree with a `K/N`).
    public static func parse(_ text: String, shardCount: Int?, environment: [String: String]) throws -> Shard {
        if text == "auto" { return try fromEnvironment(environment, shardCount: shardCount) }
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let k = Int(parts[0]), let n = Int(parts[1]) else {
            throw ShardError(.invalidSpec, "shard '\(text)': give K/N (shard K of N, K from 0) or auto")
        }
        if let shardCount, shardCount != n {
            throw ShardError(.countDisagrees, "shard '\(text)' and the shard count \(shardCount) disagree")
        }
        return try Shard(index: k, count: n)
    }

    /// The shard of this process from the scheduler:
    /// - Slurm job arrays: K = (SLURM_ARRAY_TASK_ID − SLURM_ARRAY_TASK_MIN) / SLURM_ARRAY_TASK_STEP (step 1 when
    ///   unset), N = SLURM_ARRAY_TASK_COUNT (or `--shard-count`). `--array=0-15`, `--array=1-16` and `--array=0-30:2`
    ///   all give shards 0…15 of 16; a throttle (`%4`) changes nothing.
    /// - Kubernetes Indexed Jobs: K = JOB_COMPLETION_INDEX, N = `--shard-count` (the Job's `completions`).
    public static func fromEnvironment(_ environment: [String: String], shardCount: Int?) throws -> Shard {
        func number(_ name: String) throws -> Int? {
            guard let text = environment[name], !text.isEmpty else { return nil }
            guard let value = Int(text) else { throw ShardError(.invalidEnvironment, "\(name)=\(text) is not a whole number") }
            return value
        }
        if let id = try number("SLURM_ARRAY_TASK_ID") {
            guard let min = try number("SLURM_ARRAY_TASK_MIN") else {
                throw ShardError(.invalidEnvironment, "the Slurm array task: SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_MIN is not")
            }
            let step = try number("SLURM_ARRAY_TASK_STEP") ?? 1
            guard let count = try shardCount ?? number("SLURM_ARRAY_TASK_COUNT") else {
                throw ShardError(.countMissing, "the Slurm array task: SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not, and no shard count is given")
            }
            guard step >= 1, (id - min) % step == 0 else {
                throw ShardError(.invalidEnvironment, "the Slurm array task: SLURM_ARRAY_TASK_ID=\(id) is not on the array's step (min \(min), step \(step)); use --array=A-B[:S]")
            }
            do { return try Shard(index: (id - min) / step, count: count) } catch let error as ShardError {
                throw ShardError(.outOfRange, "the Slurm array task \(id) (min \(min), count \(count)): \(error.message); use a plain range --array=A-B")
            }
        }
        if let index = try number("JOB_COMPLETION_INDEX") {
            guard let count = shardCount else {
                throw ShardError(.countMissing, "the Kubernetes Indexed Job: JOB_COMPLETION_INDEX is set but no shard count is given (N = the Job's completions)")
            }
            do { return try Shard(index: index, count: count) } catch let error as ShardError {
                throw ShardError(.outOfRange, "the Kubernetes Indexed Job (JOB_COMPLETION_INDEX=\(index)): \(error.message)")
            }
        }
        throw ShardError(.noScheduler, "no scheduler found: set SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_MIN and SLURM_ARRAY_TASK_COUNT (a Slurm array task), or JOB_COMPLETION_INDEX with a shard count (a Kubernetes Indexed Job), or give the shard as K/N")
    }
}

/// Why a shard could not be worked out, or manifests could not be merged: a stable ``code`` to switch on and a
/// message in words.
public struct ShardError: Error, CustomStringConvertible {
    /// What went wrong.
    public enum Code: String, Sendable {
        /// The spec is neither `K/N` nor `auto`.
        case invalidSpec
        /// `K/N` and the shard count given beside it disagree.
        case countDisagrees
        /// K is not in 0..<N, or N < 1.
        case outOfRange
        /// The scheduler gives K but nothing gives N.
        case countMissing
        /// A scheduler variable is malformed or incomplete.
        case invalidEnvironment
        /// `auto` with no scheduler's variables set.
        case noScheduler
        /// Manifests of different partitions were given to one merge.
        case differentPartitions
    }

    /// What went wrong, for a caller to switch on.
    public let code: Code
    /// The problem in words (in the library's terms: the shard spec, the shard count, the scheduler's variables).
    public let message: String

    /// An error with its code and message.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The message.
    public var description: String { message }
}

/// The partition of a batch's inputs over N shards.
///
/// Inputs are keyed by path and weighted by size in bytes. Greedy longest-processing-time: the inputs, largest first
/// (ties by path), each go to the shard with the fewest bytes so far (ties: the lowest shard). It depends only on the
/// set of (path, size) pairs, not on their order on the command line, so every process computes the same shards; the
/// largest shard is at most 4/3 of the optimum, and at most the mean plus the largest single file.
public enum Partition {
    /// One input as the partition sees it.
    public struct Input: Equatable, Sendable {
        /// Its path, as every process names it (the key).
        public let path: String
        /// Its size in bytes (the weight).
        public let bytes: Int64
        /// An input of `bytes` bytes at `path`.
        public init(path: String, bytes: Int64) {
            self.path = path
            self.bytes = bytes
        }
    }

    /// The shard (0..<count) of every input, in the order given.
    public static func assign(_ inputs: [Input], count: Int) -> [Int] {
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
    public static func select(_ inputs: [Input], shard: Shard) -> [Int] {
        let assigned = assign(inputs, count: shard.count)
        return inputs.indices.filter { assigned[$0] == shard.index }
    }

    /// A fingerprint of the whole input set (paths and sizes, order-independent): shards of one partition carry the
    /// same one, so manifests of different corpora or changed files are not merged as one. FNV-1a, 64 bits, hex.
    public static func fingerprint(_ inputs: [Input]) -> String {
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
