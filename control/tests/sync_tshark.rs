//! What rvs sends on the sync wire is what Wireshark's `ipvs` dissector
//! reads: messages built by [`rvs_control::sync::wire`] are written to a
//! pcap (Ethernet, IPv4, UDP 8848 to 224.0.0.81, as the sync daemon sends
//! them) and decoded by the real tshark (Debian's, installed by
//! `scripts/deps test`), field by field, with no malformed frame.
//!
//! Wireshark's version-1 dissector (4.0 here, and its master today) reads
//! each entry's fixed part only: it neither skips an entry's options by the
//! entry's size nor the padding before the next entry, so an entry that
//! follows one with options (the kernel's own sequence data included) is
//! misread. The test therefore puts the entry with options last in its
//! message: tshark decodes its fixed fields, and rvs's own parser (unit
//! tests in `sync/wire`) reads the options. docs/sync.md says so.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use rvs_control::sync::wire::{
    flags, Conn, MessageBuilder, Seq, SessionOpt, SYNC_GROUP_V4, SYNC_PORT,
};

fn conn(client: &str, vip: &str, dest: &str) -> Conn {
    Conn {
        protocol: 6,
        flags: flags::MASQ,
        state: 1,
        client: client.parse().unwrap(),
        vip: vip.parse().unwrap(),
        dest: dest.parse().unwrap(),
        fwmark: 0,
        timeout_s: 900,
        seq: None,
        pe: None,
        local: None,
        session: None,
        syn_proxy: None,
        carried: false,
        isn_off: 0,
    }
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = vec![
        0x01, 0x00, 0x5e, 0x00, 0x00, 0x51, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00,
    ];
    let total = (20 + 8 + payload.len()) as u16;
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 1, 17, 0, 0, 10, 77, 0, 2];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&SYNC_GROUP_V4.octets());
    let sum = !ip
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .fold(0u32, |a, w| {
            let s = a + w;
            (s & 0xffff) + (s >> 16)
        }) as u16;
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&SYNC_PORT.to_be_bytes());
    f.extend_from_slice(&SYNC_PORT.to_be_bytes());
    f.extend_from_slice(&(8 + payload.len() as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes()); // Ethernet
    for (i, f) in frames.iter().enumerate() {
        out.extend_from_slice(&(i as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(f);
    }
    std::fs::write(path, out).unwrap();
}

fn tshark(pcap: &Path, args: &[&str]) -> String {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args(args)
        .output()
        .expect("tshark runs (scripts/deps test installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn tshark_decodes_every_entry_rvs_sends() {
    let mut entries = Vec::new();
    // DR over IPv6, a UDP NAT one, and a persistence template.
    let mut c = conn("[fd77::10]:5353", "[fd77::100]:53", "[fd77::11]:53");
    c.flags = flags::DROUTE;
    c.protocol = 17;
    c.state = 0;
    c.timeout_s = 300;
    entries.push(c);
    let mut c = conn("10.77.0.10:0", "10.77.0.100:0", "10.77.0.12:0");
    c.flags = flags::TEMPLATE | flags::NO_CPORT;
    c.protocol = 17;
    c.state = 0;
    c.timeout_s = 360;
    entries.push(c);
    for i in 0..40u16 {
        entries.push(conn(
            &format!("10.77.1.{}:{}", i % 250, 30000 + i),
            "10.77.0.100:80",
            "10.77.0.12:80",
        ));
    }

    // A FULLNAT connection with a PROXY header inserted: sequence data and
    // rvs's local-address and session options.
    let mut c = conn("10.77.0.10:40000", "10.77.0.100:80", "10.77.0.11:80");
    c.local = Some("10.77.0.200:1025".parse::<SocketAddr>().unwrap());
    c.session = Some(SessionOpt {
        mode: 3,
        flags: 7,
        server_next: 0x8000_0001,
    });
    c.seq = Some((
        Seq {
            init_seq: 1000,
            delta: 7,
            previous_delta: 0,
        },
        Seq {
            init_seq: 2000,
            delta: 0xffff_fff9,
            previous_delta: 0,
        },
    ));
    c.flags |= flags::IN_SEQ | flags::OUT_SEQ;
    let with_options = c;
    let mut b = MessageBuilder::new(9, 1444);
    let mut datagrams = Vec::new();
    for e in &entries {
        if b.push(e).is_err() {
            datagrams.push(b.take().unwrap());
            b.push(e).unwrap();
        }
    }
    datagrams.extend(b.take());
    assert!(datagrams.len() >= 2, "the batch spans several messages");
    // The entry with options closes a message of its own kind.
    b.push(&entries[1]).unwrap();
    b.push(&with_options).unwrap();
    datagrams.push(b.take().unwrap());
    entries.push(entries[1].clone());
    entries.push(with_options);
    // A backup's resync request: a message without entries.
    datagrams.push(vec![0, 9, 0, 8, 0, 1, 0, 0]);

    let dir = std::env::temp_dir().join(format!("rvs-sync-tshark-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("sync.pcap");
    write_pcap(
        &pcap,
        &datagrams.iter().map(|d| frame(d)).collect::<Vec<_>>(),
    );

    let malformed = tshark(&pcap, &["-Y", "_ws.malformed || _ws.expert.severity >= 6"]);
    assert!(
        malformed.trim().is_empty(),
        "tshark flags frames:\n{malformed}\n{}",
        tshark(&pcap, &["-V"])
    );

    // One line per entry: every occurrence of each field, in order.
    let fields = [
        "ipvs.syncid",
        "ipvs.conncount",
        "ipvs.proto",
        "ipvs.cport",
        "ipvs.vport",
        "ipvs.dport",
        "ipvs.caddr",
        "ipvs.caddr6",
        "ipvs.daddr",
        "ipvs.daddr6",
        "ipvs.flags.v1",
        "ipvs.timeout",
    ];
    let mut args = vec!["-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|"];
    for f in &fields {
        args.extend(["-e", f]);
    }
    let out = tshark(&pcap, &args);
    let mut decoded: Vec<Vec<String>> = Vec::new();
    let mut counts = Vec::new();
    for line in out.lines() {
        let cols: Vec<Vec<&str>> = line
            .split('\t')
            .map(|c| {
                if c.is_empty() {
                    vec![]
                } else {
                    c.split('|').collect()
                }
            })
            .collect();
        assert_eq!(cols[0], vec!["9"], "syncid");
        counts.push(cols[1][0].parse::<usize>().unwrap());
        let n = cols[2].len();
        let (mut v4, mut v6) = (0, 0);
        for i in 0..n {
            let (client, dest) = if entries[decoded.len()].client.is_ipv6() {
                v6 += 1;
                (cols[7][v6 - 1], cols[9][v6 - 1])
            } else {
                v4 += 1;
                (cols[6][v4 - 1], cols[8][v4 - 1])
            };
            decoded.push(vec![
                cols[2][i].into(),
                cols[3][i].into(),
                cols[4][i].into(),
                cols[5][i].into(),
                client.into(),
                dest.into(),
                cols[10][i].into(),
                cols[11][i].into(),
            ]);
        }
    }
    assert_eq!(counts.iter().sum::<usize>(), entries.len());
    assert_eq!(decoded.len(), entries.len(), "tshark saw every entry");
    for (e, d) in entries.iter().zip(&decoded) {
        let want = vec![
            format!("0x{:02x}", e.protocol),
            e.client.port().to_string(),
            e.vip.port().to_string(),
            e.dest.port().to_string(),
            e.client.ip().to_string(),
            e.dest.ip().to_string(),
            format!("0x{:08x}", e.flags),
            e.timeout_s.to_string(),
        ];
        assert_eq!(d, &want);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
