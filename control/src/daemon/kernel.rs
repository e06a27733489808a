//! The kernel side of each interface's exception path (a TAP named like
//! the interface): its MAC, addresses and routes, set with `ip` so the
//! appliance's own traffic (health checks, ping) matches the wire.

use super::*;

/// Gives the kernel side of an interface's exception path the interface's
/// MAC and address (and its gateway), so replies to the appliance's own
/// traffic come back to the port and the kernel's view matches the wire.
pub(super) fn configure_kernel_side(
    c: &crate::config::InterfaceConfig,
    mac: &MacAddr,
) -> std::io::Result<()> {
    // Without an IPv6 address the kernel side sends no IPv6 at all (no
    // link-local, router or neighbour solicitations); with one, it carries
    // it without duplicate address detection (the data plane owns the
    // port and answers for it).
    if c.addr6.is_some() {
        for (key, value) in [
            ("accept_dad", "0"),
            ("accept_ra", "0"),
            ("disable_ipv6", "0"),
        ] {
            let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{}/{key}", c.name), value);
        }
    } else {
        let _ = std::fs::write(
            format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", c.name),
            "1",
        );
    }
    // An af_packet port shares its frames with the kernel's own interface:
    // keep that kernel interface from answering for the exception path's
    // address (ARP) or accepting its traffic (strict reverse-path filter),
    // or the kernel would see every such packet twice. NIC ports bound to
    // DPDK need none of this.
    if let Some(iface) = c.kernel_iface() {
        let _ = std::fs::write(format!("/proc/sys/net/ipv4/conf/{iface}/arp_ignore"), "8");
        let _ = std::fs::write(format!("/proc/sys/net/ipv4/conf/{iface}/rp_filter"), "1");
    }
    let ip = kernel_ip;
    let mac = fmt_mac(mac);
    ip(&["link", "set", "dev", &c.name, "address", &mac])?;
    ip(&["link", "set", "dev", &c.name, "up"])?;
    ip(&[
        "addr",
        "replace",
        &format!("{}/{}", c.addr, c.prefix_len),
        "dev",
        &c.name,
    ])?;
    if let Some(gw) = c.gateway {
        ip(&[
            "route",
            "replace",
            "default",
            "via",
            &gw.to_string(),
            "dev",
            &c.name,
        ])?;
    }
    if let Some((a, len)) = c.addr6 {
        ip(&[
            "-6",
            "addr",
            "replace",
            &format!("{a}/{len}"),
            "dev",
            &c.name,
            "nodad",
        ])?;
        if let Some(gw) = c.gateway6 {
            ip(&[
                "-6",
                "route",
                "replace",
                "default",
                "via",
                &gw.to_string(),
                "dev",
                &c.name,
            ])?;
        }
    }
    Ok(())
}

/// Runs `ip ARGS` (the kernel side of the exception path).
pub(super) fn kernel_ip(args: &[&str]) -> std::io::Result<()> {
    let out = std::process::Command::new("ip").args(args).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Adds (`replace`) or deletes static route `r` on the kernel side, so the
/// appliance's own traffic (health checks, ping) takes the same way.
pub(super) fn kernel_route(r: &crate::config::net::RouteConfig, add: bool) -> std::io::Result<()> {
    let dest = if r.len == 0 {
        "default".to_string()
    } else {
        format!("{}/{}", r.prefix, r.len)
    };
    let via = r.via.map(|v| v.to_string());
    let family = if r.prefix.is_ipv6() { "-6" } else { "-4" };
    let mut args = vec![
        family,
        "route",
        if add { "replace" } else { "del" },
        dest.as_str(),
    ];
    if let Some(v) = &via {
        args.extend(["via", v.as_str()]);
    }
    args.extend(["dev", r.dev.as_str()]);
    kernel_ip(&args)
}
