//! ipvsadm's rules for which options go with which command, and its exact
//! refusals: ipvsadm 1.31's `commands_v_options` table, `set_option`
//! ("multiple '...' options specified"), `set_command` ("multiple commands
//! specified") and `generic_opt_check` ("You need to supply...", "Illegal
//! '...' option with the '...' command", "The option '...' conflicts
//! with..."). rvsadm applies them to the commands ipvsadm has; its own
//! commands (`-P`, `-Q`, `--reload`, ...) have their own checks. Every
//! refusal here is a parse error: exit code 2, as ipvsadm's `fail(2, ...)`.

/// ipvsadm's options, in its table's column order (`OPTC_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Opt {
    /// `-n`
    Numeric,
    /// `-c`
    Connection,
    /// `-t`, `-u`, `-f`
    Service,
    /// `-s`
    Scheduler,
    /// `-p`
    Persistent,
    /// `-M`
    Netmask,
    /// `-r`
    RealServer,
    /// `-g`, `-i`, `-m` (and rvs's `--fullnat`)
    Forward,
    /// `-w`
    Weight,
    /// `-x`
    UThreshold,
    /// `-y`
    LThreshold,
    /// `--mcast-interface`
    McastInterface,
    /// `--timeout`
    Timeout,
    /// `--daemon`
    Daemon,
    /// `--stats`
    Stats,
    /// `--rate`
    Rate,
    /// `--thresholds`
    Thresholds,
    /// `--persistent-conn`
    PersistentConn,
    /// `--nosort`
    NoSort,
    /// `--syncid`
    SyncId,
    /// `--exact`
    Exact,
    /// `-o`
    Ops,
    /// `--pe`
    Pe,
    /// `-b`
    SchedFlags,
    /// `--mcast-group`
    McastGroup,
    /// `--mcast-port`
    McastPort,
    /// `--mcast-ttl`
    McastTtl,
    /// `--sync-maxlen`
    SyncMaxlen,
    /// `--tun-info`
    TunInfo,
    /// `--tun-type`
    TunType,
    /// `--tun-port`
    TunPort,
    /// `--tun-nocsum`
    TunNocsum,
    /// `--tun-csum`
    TunCsum,
    /// `--tun-remcsum`
    TunRemcsum,
}

/// The names ipvsadm's messages use (`optnames`).
const OPTNAMES: [&str; 34] = [
    "numeric",
    "connection",
    "service-address",
    "scheduler",
    "persistent",
    "netmask",
    "real-server",
    "forwarding-method",
    "weight",
    "u-threshold",
    "l-threshold",
    "mcast-interface",
    "timeout",
    "daemon",
    "stats",
    "rate",
    "thresholds",
    "persistent-conn",
    "nosort",
    "syncid",
    "exact",
    "ops",
    "pe",
    "sched-flags",
    "mcast-group",
    "mcast-port",
    "mcast-ttl",
    "sync-maxlen",
    "tun-info",
    "tun-type",
    "tun-port",
    "tun-nocsum",
    "tun-csum",
    "tun-remcsum",
];

/// ipvsadm's commands, in its table's row order (`CMD_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Command {
    /// `-A`
    Add,
    /// `-E`
    Edit,
    /// `-D`
    Del,
    /// `-C`
    Flush,
    /// `-L`, `-l`
    List,
    /// `-a`
    AddDest,
    /// `-d`
    DelDest,
    /// `-e`
    EditDest,
    /// `--set`
    Timeout,
    /// `--start-daemon`
    StartDaemon,
    /// `--stop-daemon`
    StopDaemon,
    /// `-R`
    Restore,
    /// `-S`
    Save,
    /// `-Z`
    Zero,
}

/// The names ipvsadm's messages use (`cmdnames`).
const CMDNAMES: [&str; 14] = [
    "add-service",
    "edit-service",
    "delete-service",
    "flush",
    "list",
    "add-server",
    "delete-server",
    "edit-server",
    "set",
    "start-daemon",
    "stop-daemon",
    "restore",
    "save",
    "zero",
];

/// `commands_v_options`: `+` compulsory, `x` illegal, `1` at most one of
/// the `1`s, ` ` optional. Columns as [`OPTNAMES`].
const TABLE: [&[u8; 34]; 14] = [
    //   n c s s p M r f w x y m t d s r t p s s e o p b g p t s t t t n c r
    b"xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx", // add-service
    b"xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx", // edit-service
    b"xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // delete-service
    b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // flush
    b" 11xxxxxxxxx11       xxxxxxx xxxxx", // list
    b"xx+xxx+    xxxxxxxxxxxxxxxxxx     ", // add-server
    b"xx+xxx+xxxxxxxxxxxxxxxxxxxxxxxxxxx", // delete-server
    b"xx+xxx+    xxxxxxxxxxxxxxxxxx     ", // edit-server
    b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // set
    b"xxxxxxxxxxx xxxxxxx xxxx    xxxxxx", // start-daemon
    b"xxxxxxxxxxxxxxxxxxx xxxxxxxxxxxxxx", // stop-daemon
    b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // restore
    b" xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // save
    b"xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // zero
];

impl Command {
    /// The name ipvsadm's messages use.
    #[must_use]
    pub fn name(self) -> &'static str {
        CMDNAMES[self as usize]
    }
}

impl Opt {
    /// The name ipvsadm's messages use.
    #[must_use]
    pub fn name(self) -> &'static str {
        OPTNAMES[self as usize]
    }

    const ALL: [Opt; 34] = [
        Opt::Numeric,
        Opt::Connection,
        Opt::Service,
        Opt::Scheduler,
        Opt::Persistent,
        Opt::Netmask,
        Opt::RealServer,
        Opt::Forward,
        Opt::Weight,
        Opt::UThreshold,
        Opt::LThreshold,
        Opt::McastInterface,
        Opt::Timeout,
        Opt::Daemon,
        Opt::Stats,
        Opt::Rate,
        Opt::Thresholds,
        Opt::PersistentConn,
        Opt::NoSort,
        Opt::SyncId,
        Opt::Exact,
        Opt::Ops,
        Opt::Pe,
        Opt::SchedFlags,
        Opt::McastGroup,
        Opt::McastPort,
        Opt::McastTtl,
        Opt::SyncMaxlen,
        Opt::TunInfo,
        Opt::TunType,
        Opt::TunPort,
        Opt::TunNocsum,
        Opt::TunCsum,
        Opt::TunRemcsum,
    ];
}

/// The options given so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OptSet(u64);

impl OptSet {
    /// Records `o`.
    ///
    /// # Errors
    /// ipvsadm's text when `o` was given already.
    pub fn set(&mut self, o: Opt) -> Result<(), String> {
        let bit = 1u64 << (o as u8);
        if self.0 & bit != 0 {
            return Err(format!("multiple '{}' options specified", o.name()));
        }
        self.0 |= bit;
        Ok(())
    }

    /// Whether `o` was given.
    #[must_use]
    pub fn has(self, o: Opt) -> bool {
        self.0 & (1u64 << (o as u8)) != 0
    }
}

/// `generic_opt_check`: the options against the command's row.
///
/// # Errors
/// ipvsadm's text for the first option (in table order) that is missing,
/// illegal or conflicting.
pub fn check(cmd: Command, opts: OptSet) -> Result<(), String> {
    let row = TABLE[cmd as usize];
    let mut first_exclusive: Option<Opt> = None;
    for o in Opt::ALL {
        let rule = row[o as usize];
        if !opts.has(o) {
            if rule == b'+' {
                return Err(format!(
                    "You need to supply the '{}' option for the '{}' command",
                    o.name(),
                    cmd.name()
                ));
            }
            continue;
        }
        match rule {
            b'x' => {
                return Err(format!(
                    "Illegal '{}' option with the '{}' command",
                    o.name(),
                    cmd.name()
                ))
            }
            b'1' => match first_exclusive {
                None => first_exclusive = Some(o),
                Some(last) => {
                    return Err(format!(
                        "The option '{}' conflicts with the '{}' option in the '{}' command",
                        o.name(),
                        last.name(),
                        cmd.name()
                    ))
                }
            },
            _ => {}
        }
    }
    Ok(())
}

/// ipvsadm's list-command conflicts checked after the table: connections,
/// timeouts or the daemon with any statistics column; timeouts or the
/// daemon with `--persistent-conn`.
///
/// # Errors
/// "options conflicts in the list command".
pub fn check_list(opts: OptSet) -> Result<(), String> {
    let any = |os: &[Opt]| os.iter().any(|&o| opts.has(o));
    if (any(&[Opt::Connection, Opt::Timeout, Opt::Daemon])
        && any(&[Opt::Stats, Opt::Rate, Opt::Thresholds]))
        || (any(&[Opt::Timeout, Opt::Daemon]) && opts.has(Opt::PersistentConn))
    {
        return Err("options conflicts in the list command".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(os: &[Opt]) -> OptSet {
        let mut s = OptSet::default();
        for &o in os {
            s.set(o).unwrap();
        }
        s
    }

    /// The rows transcribed from ipvsadm 1.31's table, cell by cell, as
    /// the C source spells them (`{'x', 'x', '+', ' ', ...}`).
    #[test]
    fn the_table_is_ipvsadms() {
        let c_rows = [
            "'x', 'x', '+', ' ', ' ', ' ', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', ' ', ' ', ' ', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'",
            "'x', 'x', '+', ' ', ' ', ' ', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', ' ', ' ', ' ', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'",
            "'x', 'x', '+', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'",
            "'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'",
            "' ', '1', '1', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', '1', '1', ' ', ' ', ' ', ' ', ' ', ' ', ' ', 'x', 'x', 'x', 'x', 'x', 'x', 'x', ' ', 'x', 'x', 'x', 'x', 'x'",
            "'x', 'x', '+', 'x', 'x', 'x', '+', ' ', ' ', ' ', ' ', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', ' ', ' ', ' ', ' ', ' '",
            "'x', 'x', '+', 'x', 'x', 'x', '+', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'",
            "'x', 'x', '+', 'x', 'x', 'x', '+', ' ', ' ', ' ', ' ', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', ' ', ' ', ' ', ' ', ' '",
            "'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'",
            "'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', ' ', 'x', 'x', 'x', 'x', 'x', 'x', 'x', ' ', 'x', 'x', 'x', 'x', ' ', ' ', ' ', ' ', 'x', 'x', 'x', 'x', 'x', 'x'",
            "'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', ' ', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'",
            "'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'",
            "' ', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'",
            "'x', 'x', ' ', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'",
        ];
        for (row, c) in TABLE.iter().zip(c_rows) {
            let cells: Vec<u8> = c.split(", ").map(|cell| cell.as_bytes()[1]).collect();
            assert_eq!(&cells[..], &row[..]);
        }
    }

    #[test]
    fn ipvsadms_refusals_word_for_word() {
        let mut s = OptSet::default();
        s.set(Opt::Scheduler).unwrap();
        assert_eq!(
            s.set(Opt::Scheduler),
            Err("multiple 'scheduler' options specified".into())
        );
        assert_eq!(
            check(Command::Flush, set(&[Opt::Service])),
            Err("Illegal 'service-address' option with the 'flush' command".into())
        );
        assert_eq!(
            check(Command::AddDest, set(&[Opt::Service])),
            Err("You need to supply the 'real-server' option for the 'add-server' command".into())
        );
        assert_eq!(
            check(
                Command::DelDest,
                set(&[Opt::Service, Opt::RealServer, Opt::Scheduler])
            ),
            Err("Illegal 'scheduler' option with the 'delete-server' command".into())
        );
        assert_eq!(
            check(Command::List, set(&[Opt::Connection, Opt::Service])),
            Err("The option 'service-address' conflicts with the 'connection' option in the 'list' command".into())
        );
        assert_eq!(
            check(Command::Del, set(&[Opt::Service, Opt::Scheduler])),
            Err("Illegal 'scheduler' option with the 'delete-service' command".into())
        );
        assert_eq!(
            check(Command::List, set(&[Opt::Numeric, Opt::Stats])),
            Ok(())
        );
        assert_eq!(
            check(
                Command::AddDest,
                set(&[Opt::Service, Opt::RealServer, Opt::Forward, Opt::Weight])
            ),
            Ok(())
        );
        assert_eq!(
            check_list(set(&[Opt::Connection, Opt::Stats])),
            Err("options conflicts in the list command".into())
        );
        assert_eq!(check_list(set(&[Opt::Numeric, Opt::Rate])), Ok(()));
    }
}
