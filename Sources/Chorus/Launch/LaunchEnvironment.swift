/// Where a process sits in a job, as its launcher described it in the environment.
///
/// Read in this order, the first that is present winning:
///
/// | launcher | rank | size | local rank | store address | job token |
/// |---|---|---|---|---|---|
/// | torchrun, `chorus run` | `RANK` | `WORLD_SIZE` | `LOCAL_RANK` | `MASTER_ADDR:MASTER_PORT` | `TORCHELASTIC_RUN_ID` |
/// | Open MPI | `OMPI_COMM_WORLD_RANK` | `OMPI_COMM_WORLD_SIZE` | `OMPI_COMM_WORLD_LOCAL_RANK` | | Open MPI's job id |
/// | MPICH, PMI | `PMI_RANK` | `PMI_SIZE` | `MPI_LOCALRANKID` | | `PMIX_NAMESPACE` |
/// | Slurm | `SLURM_PROCID` | `SLURM_NTASKS` | `SLURM_LOCALID` | first host of the step | `SLURM_JOB_ID` |
///
/// `CHORUS_RENDEZVOUS` and `CHORUS_JOB_TOKEN` override the store address and token. Under
/// Slurm the store listens on port `20000 + SLURM_JOB_ID mod 20000` unless `CHORUS_RENDEZVOUS`
/// says otherwise.
public struct LaunchEnvironment: Sendable, Equatable {
    /// `torchrun`, `openmpi`, `pmi`, `slurm`.
    public var launcher: String
    public var rank: Int
    public var size: Int
    public var localRank: Int?
    /// `host:port` of the rendezvous store.
    public var rendezvous: String
    /// `nil` when neither `CHORUS_JOB_TOKEN` nor a launcher job id is set.
    public var jobToken: String?

    public init(launcher: String, rank: Int, size: Int, localRank: Int? = nil, rendezvous: String, jobToken: String?) {
        self.launcher = launcher
        self.rank = rank
        self.size = size
        self.localRank = localRank
        self.rendezvous = rendezvous
        self.jobToken = jobToken
    }

    /// - Throws: `ChorusError.configuration` naming the variable that is missing or malformed.
    public init(environment env: [String: String]) throws(ChorusError) {
        func value(_ name: String) -> String? { env[name].flatMap { $0.isEmpty ? nil : $0 } }
        func number(_ name: String) throws(ChorusError) -> Int? {
            guard let text = value(name) else { return nil }
            guard let n = Int(text.trimmingSpaces), n >= 0 else {
                throw .configuration("\(name)=\(text) is not a non-negative whole number")
            }
            return n
        }
        let launchers: [(name: String, rank: String, size: String, local: String)] = [
            ("torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK"),
            ("openmpi", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"),
            ("pmi", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID"),
            ("slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"),
        ]
        guard let l = launchers.first(where: { value($0.rank) != nil || value($0.size) != nil }) else {
            throw .configuration("no launcher described this process: set RANK and WORLD_SIZE (torchrun style), or start it with chorus run, mpirun or srun")
        }
        guard let rank = try number(l.rank) else { throw .configuration("\(l.size) is set but \(l.rank) is not (launcher \(l.name))") }
        guard let size = try number(l.size) else { throw .configuration("\(l.rank) is set but \(l.size) is not (launcher \(l.name))") }
        guard size >= 1 else { throw .configuration("\(l.size)=\(size): a job needs at least one rank") }
        guard rank < size else { throw .configuration("\(l.rank)=\(rank) is not below \(l.size)=\(size)") }
        launcher = l.name
        self.rank = rank
        self.size = size
        localRank = try number(l.local)

        if let address = value("CHORUS_RENDEZVOUS") {
            rendezvous = address
        } else if value("MASTER_ADDR") != nil || value("MASTER_PORT") != nil {
            guard let host = value("MASTER_ADDR") else { throw .configuration("MASTER_PORT is set but MASTER_ADDR is not") }
            guard let port = value("MASTER_PORT") else { throw .configuration("MASTER_ADDR is set but MASTER_PORT is not") }
            rendezvous = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]:\(port)" : "\(host):\(port)"
        } else if l.name == "slurm", let nodes = value("SLURM_STEP_NODELIST") ?? value("SLURM_JOB_NODELIST") ?? value("SLURM_NODELIST") {
            guard let host = Self.firstHost(ofNodeList: nodes) else {
                throw .configuration("cannot read the first host of the Slurm node list '\(nodes)'; set CHORUS_RENDEZVOUS=host:port")
            }
            let job = try number("SLURM_JOB_ID") ?? 0
            rendezvous = "\(host):\(20000 + job % 20000)"
        } else {
            throw .configuration("no rendezvous address: set CHORUS_RENDEZVOUS=host:port (the host of rank 0 and a free port), or MASTER_ADDR and MASTER_PORT")
        }

        let tokenSources = ["CHORUS_JOB_TOKEN", "TORCHELASTIC_RUN_ID", "SLURM_JOB_ID", "PMIX_NAMESPACE", "OMPI_MCA_ess_base_jobid"]
        jobToken = tokenSources.lazy.compactMap { value($0) }.first
    }

    /// The first host of a Slurm node list: `node[03-05,9],gpu1` gives `node03`.
    public static func firstHost(ofNodeList list: String) -> String? {
        var first = ""
        var depth = 0
        for ch in list {
            if ch == "[" { depth += 1 } else if ch == "]" { depth -= 1 }
            if ch == "," && depth == 0 { break }
            first.append(ch)
        }
        guard !first.isEmpty else { return nil }
        guard let open = first.firstIndex(of: "[") else { return first }
        guard let close = first.firstIndex(of: "]"), open < close else { return nil }
        let prefix = first[..<open]
        let inner = first[first.index(after: open)..<close]
        let range = inner.split(separator: ",").first ?? ""
        let start = range.split(separator: "-").first ?? ""
        guard !start.isEmpty, start.allSatisfy(\.isNumber) else { return nil }
        return String(prefix) + String(start) + String(first[first.index(after: close)...])
    }
}

extension String {
    var trimmingSpaces: String {
        String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}
