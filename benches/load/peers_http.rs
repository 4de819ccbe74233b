//! The peers in HTTP mode, each a reverse proxy balancing requests round
//! robin over pooled HTTP/1.1 connections to the same endpoints, with the
//! client-side keep-alive unbounded in requests and 60 s idle, no logging,
//! and `X-Forwarded-For`/`-Proto` set as svcproxy sets them:
//!
//! - HAProxy `mode http`, `http-reuse always`, `option http-keep-alive`. Its
//!   cleartext HTTP frontends take h2c by the HTTP/2 preface (checked
//!   with HAProxy 2.6: no `proto h2`, which would refuse HTTP/1.1).
//! - nginx `http {}`: an `upstream` with `keepalive 64`,
//!   `proxy_http_version 1.1`, `Connection ""`. Before 1.25.1 a cleartext
//!   `http2` listener speaks only HTTP/2, so h2c gets a listener of its
//!   own (`listen ... http2`, or `http2 on;` from 1.25.1).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::Command;

use anyhow::{Context, Result};

use super::peers::{self, NginxSetup};

/// How this nginx turns HTTP/2 on, when it was built with it.
#[derive(Clone, Copy, Debug)]
pub enum NginxH2 {
    /// `listen ADDR http2;` (before 1.25.1).
    ListenParameter,
    /// `http2 on;` in the server (1.25.1 and later).
    Directive,
}

/// nginx's HTTP/2 support, from `nginx -V`; `None` without the module.
pub fn nginx_h2() -> Result<Option<NginxH2>> {
    let out = Command::new("nginx").arg("-V").output().context("nginx -V")?;
    let text = String::from_utf8_lossy(&[out.stdout, out.stderr].concat()).into_owned();
    if !text.split_whitespace().any(|f| f == "--with-http_v2_module") {
        return Ok(None);
    }
    let version = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix("nginx/"))
        .map(|v| v.split('.').map(|n| n.parse::<u32>().unwrap_or(0)).collect::<Vec<_>>())
        .unwrap_or_default();
    let directive = version.as_slice() >= [1, 25, 1].as_slice();
    Ok(Some(if directive { NginxH2::Directive } else { NginxH2::ListenParameter }))
}

/// nginx as an HTTP reverse proxy on `s.listen`, and for h2c on `h2c`'s
/// address when given.
pub fn nginx_config(s: &NginxSetup<'_>, h2c: Option<(SocketAddr, NginxH2)>) -> String {
    let mut cfg = String::new();
    peers::nginx_main(&mut cfg, s);
    let wd = s.workdir.display();
    cfg.push_str("http {\n    access_log off;\n    keepalive_timeout 60s;\n");
    cfg.push_str("    keepalive_requests 1000000;\n");
    for temp in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
        let _ = writeln!(cfg, "    {temp}_temp_path {wd}/{temp}_temp;");
    }
    cfg.push_str("    upstream be {\n");
    for e in s.endpoints {
        let _ = writeln!(cfg, "        server {e};");
    }
    cfg.push_str(
        "        keepalive 64;\n        keepalive_requests 1000000;\n        \
         keepalive_timeout 60s;\n    }\n",
    );
    server(&mut cfg, &format!("listen {} backlog=4096;", s.listen));
    match h2c {
        Some((addr, NginxH2::ListenParameter)) => {
            server(&mut cfg, &format!("listen {addr} http2 backlog=4096;"));
        }
        Some((addr, NginxH2::Directive)) => {
            server(&mut cfg, &format!("listen {addr} backlog=4096;\n        http2 on;"));
        }
        None => {}
    }
    cfg.push_str("}\n");
    cfg
}

/// One `server {}` starting with `head`, proxying everything to `be`.
fn server(cfg: &mut String, head: &str) {
    let _ = write!(
        cfg,
        "    server {{\n        {head}\n        location / {{\n            proxy_pass http://be;\n            \
         proxy_http_version 1.1;\n            proxy_set_header Connection \"\";\n            \
         proxy_set_header Host $host;\n            \
         proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n            \
         proxy_set_header X-Forwarded-Proto $scheme;\n            \
         proxy_connect_timeout 2s;\n            proxy_read_timeout 60s;\n            \
         proxy_send_timeout 60s;\n        }}\n    }}\n"
    );
}

/// HAProxy `mode http`: `threads` threads, `maxconn` connections.
pub fn haproxy_config(
    listen: SocketAddr,
    endpoints: &[SocketAddr],
    threads: usize,
    maxconn: usize,
) -> String {
    let mut cfg = format!(
        "global\n    nbthread {threads}\n    maxconn {maxconn}\n\n\
         defaults\n    mode http\n    maxconn {maxconn}\n    option http-keep-alive\n    \
         option forwardfor\n    http-reuse always\n    timeout connect 2s\n    \
         timeout client  60s\n    timeout server  60s\n\n\
         frontend fe\n    bind {listen}\n    default_backend be\n\n\
         backend be\n    balance roundrobin\n    \
         http-request set-header X-Forwarded-Proto http\n"
    );
    for (i, e) in endpoints.iter().enumerate() {
        let _ = writeln!(cfg, "    server b{i} {e}");
    }
    cfg
}
