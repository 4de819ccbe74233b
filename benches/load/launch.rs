//! How each implementation is started in each mode: whether it can run
//! here, its configuration written into its directory, its command line
//! (taskset-wrapped when the bench pins), and where h2c clients go.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::process::Command;

use anyhow::Result;

use super::args::{Impl, Mode};
use super::proxy::{Env, free_port};
use super::{peers, peers_http, svcproxy};

/// A proxy's command, and its h2c address (HTTP mode).
pub struct Launch {
    pub cmd: Command,
    pub h2c: Option<SocketAddr>,
}

/// Why `kind` cannot run in `mode` here; `None` when it can.
pub fn missing(kind: Impl, mode: Mode) -> Option<String> {
    match (kind, mode) {
        (Impl::Svcproxy, _) => None,
        (Impl::Haproxy, _) => {
            peers::which("haproxy").is_none().then(|| "haproxy is not on PATH".to_owned())
        }
        (Impl::Nginx, _) if peers::which("nginx").is_none() => {
            Some("nginx is not on PATH".to_owned())
        }
        (Impl::Nginx, Mode::Tcp) => peers::nginx_stream().err().map(|e| format!("nginx: {e}")),
        (Impl::Nginx, Mode::Http) => None,
    }
}

/// Writes `kind`'s configuration for `mode` into `dir`: its command.
pub fn launch(
    kind: Impl,
    mode: Mode,
    env: &Env<'_>,
    listen: SocketAddrV4,
    dir: &Path,
) -> Result<Launch> {
    let (ip, listen) = (*listen.ip(), SocketAddr::V4(listen));
    let h2c = (mode == Mode::Http).then_some(listen);
    let cmd = match (kind, mode) {
        (Impl::Svcproxy, _) => {
            let manifests = dir.join("manifests");
            // The extra Services' addresses are one set: the TCP-mode proxy's.
            let extra = if mode == Mode::Tcp { env.services } else { 0 };
            svcproxy::write_manifests(&manifests, listen, env.endpoints, extra, mode)?;
            let mut cmd = env.pin.command(env!("CARGO_BIN_EXE_svcproxy"));
            svcproxy::command(&mut cmd, &manifests, ip);
            cmd.args(env.svcproxy_args);
            cmd
        }
        (Impl::Haproxy, _) => {
            let config = dir.join("haproxy.cfg");
            let (threads, maxconn) = (env.pin.proxy_threads(), env.maxconn);
            let text = match mode {
                Mode::Tcp => peers::haproxy_config(listen, env.endpoints, threads, maxconn),
                Mode::Http => peers_http::haproxy_config(listen, env.endpoints, threads, maxconn),
            };
            std::fs::write(&config, text)?;
            peers::haproxy_command(env.pin.command("haproxy"), &config)
        }
        (Impl::Nginx, Mode::Tcp) => {
            let text = peers::nginx_config(&peers::nginx_stream()?, &nginx(env, listen, dir));
            return nginx_launch(env, dir, &text, None);
        }
        (Impl::Nginx, Mode::Http) => return nginx_http(env, ip, listen, dir),
    };
    Ok(Launch { cmd, h2c })
}

/// nginx in HTTP mode on `listen`; h2c on another port of `ip` (the
/// listen address), when it has HTTP/2.
fn nginx_http(env: &Env<'_>, ip: Ipv4Addr, listen: SocketAddr, dir: &Path) -> Result<Launch> {
    let h2c = match peers_http::nginx_h2()? {
        Some(h2) => Some((SocketAddr::from((ip, free_port(ip)?)), h2)),
        None => None,
    };
    let text = peers_http::nginx_config(&nginx(env, listen, dir), h2c);
    nginx_launch(env, dir, &text, h2c.map(|(addr, _)| addr))
}

fn nginx_launch(env: &Env<'_>, dir: &Path, text: &str, h2c: Option<SocketAddr>) -> Result<Launch> {
    let config = dir.join("nginx.conf");
    std::fs::write(&config, text)?;
    Ok(Launch { cmd: peers::nginx_command(env.pin.command("nginx"), dir, &config), h2c })
}

fn nginx<'a>(env: &Env<'a>, listen: SocketAddr, dir: &'a Path) -> peers::NginxSetup<'a> {
    peers::NginxSetup {
        listen,
        endpoints: env.endpoints,
        workdir: dir,
        workers: env.pin.proxy_threads(),
        nofile: env.nofile,
        // Each proxied connection is two of nginx's connections.
        maxconn: 2 * env.maxconn,
    }
}
