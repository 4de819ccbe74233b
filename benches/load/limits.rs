//! The descriptor budget. Every proxied connection costs a proxy two
//! descriptors (client and endpoint side), and this process two as well
//! (the client's socket and the endpoint's); svcproxy also holds one
//! listener per extra Service port. The soft RLIMIT_NOFILE is raised to
//! the hard limit (and the hard limit too where permitted: it needs
//! CAP_SYS_RESOURCE), and what does not fit is cut down, with a note.

/// Descriptors kept aside for everything but connections and listeners.
const SLACK: u64 = 512;

/// What fits under the limit.
pub struct Budget {
    /// The soft limit every child inherits.
    pub nofile: u64,
    pub services: u32,
    pub idle: usize,
    pub notes: Vec<String>,
}

/// Raises the limit towards what `services` and `idle` need; cuts them
/// to fit what it got.
pub fn budget(services: u32, idle: usize) -> Budget {
    let listeners = 2 * u64::from(services);
    let nofile = raise(listeners + 2 * idle as u64 + SLACK);
    let mut notes = Vec::new();
    let fits_services = (nofile.saturating_sub(SLACK) / 2).min(u64::from(services));
    let services_used = u32::try_from(fits_services).unwrap_or(services);
    if services_used < services {
        notes.push(format!(
            "--services {services} cut to {services_used}: RLIMIT_NOFILE is {nofile} \
             (2 listeners per Service; raising it needs CAP_SYS_RESOURCE)"
        ));
    }
    let left = nofile.saturating_sub(2 * u64::from(services_used) + SLACK) / 2;
    let idle_used = usize::try_from(left).unwrap_or(idle).min(idle);
    if idle_used < idle {
        notes.push(format!(
            "--idle {idle} cut to {idle_used}: RLIMIT_NOFILE is {nofile} (2 descriptors per \
             proxied connection in the proxy and in the bench; raising it needs CAP_SYS_RESOURCE)"
        ));
    }
    Budget { nofile, services: services_used, idle: idle_used, notes }
}

/// Soft (and, if allowed, hard) RLIMIT_NOFILE up to `want` (at least
/// 65,536, at most `fs.nr_open`); the soft limit reached.
fn raise(want: u64) -> u64 {
    const NOFILE: rlimit::Resource = rlimit::Resource::NOFILE;
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok())
        .unwrap_or(1 << 20);
    let want = want.max(65_536).min(nr_open);
    let (_, hard) = rlimit::getrlimit(NOFILE).unwrap_or((0, 0));
    if rlimit::setrlimit(NOFILE, want, hard.max(want)).is_err() {
        // Not permitted past the hard limit: the soft one up to it.
        let _ = rlimit::increase_nofile_limit(want);
    }
    rlimit::getrlimit(NOFILE).map_or(1024, |(soft, _)| soft)
}
