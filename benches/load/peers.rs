//! The peers in TCP mode: HAProxy (`mode tcp`, round robin) and nginx
//! (`stream {}`, round robin), configured as the shared bench's templates
//! do (`../shared/bench/templates/`): no logging, one thread or worker per
//! proxy CPU, connection limits above what the idle test opens. Finding
//! the programs, and nginx's main context, serve `peers_http` too.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Result, bail};

/// `program` found on `PATH`.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|p| p.is_file())
}

/// The first line `program args` prints (stdout or stderr), for the report.
pub fn version(program: &str, args: &[&str]) -> String {
    match Command::new(program).args(args).output() {
        Ok(out) => {
            let text = [out.stdout, out.stderr].concat();
            String::from_utf8_lossy(&text).lines().next().unwrap_or("?").trim().to_owned()
        }
        Err(e) => format!("? ({e})"),
    }
}

/// HAProxy's configuration: `threads` threads, `maxconn` connections.
pub fn haproxy_config(
    listen: SocketAddr,
    endpoints: &[SocketAddr],
    threads: usize,
    maxconn: usize,
) -> String {
    let mut cfg = format!(
        "global\n    nbthread {threads}\n    maxconn {maxconn}\n\n\
         defaults\n    mode tcp\n    maxconn {maxconn}\n    timeout connect 2s\n    \
         timeout client  60s\n    timeout server  60s\n\n\
         frontend fe\n    bind {listen}\n    default_backend be\n\n\
         backend be\n    balance roundrobin\n"
    );
    for (i, e) in endpoints.iter().enumerate() {
        let _ = writeln!(cfg, "    server b{i} {e}");
    }
    cfg
}

/// `haproxy -db -f CONFIG` (foreground, no daemon).
pub fn haproxy_command(mut base: Command, config: &Path) -> Command {
    base.arg("-db").arg("-f").arg(config);
    base
}

/// What nginx's stream module needs.
pub struct Nginx {
    /// The module to load; `None` when built in.
    pub module: Option<PathBuf>,
}

/// Where `nginx -V` says the stream module is; an error when it has none.
pub fn nginx_stream() -> Result<Nginx> {
    let out = Command::new("nginx").arg("-V").output()?;
    let text = String::from_utf8_lossy(&[out.stdout, out.stderr].concat()).into_owned();
    let flags: Vec<&str> = text.split_whitespace().collect();
    if flags.contains(&"--with-stream") {
        return Ok(Nginx { module: None });
    }
    if !flags.contains(&"--with-stream=dynamic") {
        bail!("this nginx has no stream module");
    }
    let dir = flags
        .iter()
        .find_map(|f| f.strip_prefix("--modules-path="))
        .unwrap_or("/usr/lib/nginx/modules");
    let module = Path::new(dir).join("ngx_stream_module.so");
    if !module.is_file() {
        bail!("{} is missing (Debian: apt-get install libnginx-mod-stream)", module.display());
    }
    Ok(Nginx { module: Some(module) })
}

/// Everything an nginx configuration depends on.
pub struct NginxSetup<'a> {
    pub listen: SocketAddr,
    pub endpoints: &'a [SocketAddr],
    pub workdir: &'a Path,
    pub workers: usize,
    pub nofile: u64,
    pub maxconn: usize,
}

/// nginx's configuration: a master and `workers` workers, stream only.
pub fn nginx_config(nginx: &Nginx, s: &NginxSetup<'_>) -> String {
    let mut cfg = String::new();
    if let Some(module) = &nginx.module {
        let _ = writeln!(cfg, "load_module {};", module.display());
    }
    nginx_main(&mut cfg, s);
    cfg.push_str("stream {\n    upstream be {\n");
    for e in s.endpoints {
        let _ = writeln!(cfg, "        server {e};");
    }
    let reuseport = if s.workers > 1 { " reuseport" } else { "" };
    let _ = write!(
        cfg,
        "    }}\n    server {{\n        listen {} backlog=4096{reuseport};\n        proxy_pass be;\n        \
         proxy_connect_timeout 2s;\n        proxy_timeout 60s;\n    }}\n}}\n",
        s.listen
    );
    cfg
}

/// The main context every nginx configuration starts with: a master and
/// `workers` workers, no daemon, its files in the work directory.
pub fn nginx_main(cfg: &mut String, s: &NginxSetup<'_>) {
    let wd = s.workdir.display();
    let _ = write!(
        cfg,
        "daemon off;\nmaster_process on;\nworker_processes {};\npid {wd}/nginx.pid;\n\
         error_log {wd}/nginx.error.log warn;\nworker_rlimit_nofile {};\n\n\
         events {{\n    worker_connections {};\n}}\n\n",
        s.workers, s.nofile, s.maxconn
    );
}

/// `nginx -p WORKDIR -c CONFIG -e ERRORLOG` (stays in the foreground: `daemon off`).
pub fn nginx_command(mut base: Command, workdir: &Path, config: &Path) -> Command {
    base.arg("-p")
        .arg(workdir)
        .arg("-c")
        .arg(config)
        .arg("-e")
        .arg(workdir.join("nginx.error.log"));
    base
}
