//! The door of the slow path: a new connection passes its service's ACL
//! ([`crate::acl`]) and limits ([`crate::limits`]) before it is scheduled.
//! The logic lives in those modules; this is the glue to the pipeline's
//! counts (the service's connections on this worker are its real servers'
//! connection counts).

use super::Pipeline;
use crate::limits::Ticket;
use crate::session::FlowKey;
use crate::stats::DropReason;
use crate::time::Millis;

impl Pipeline {
    /// Judges a new connection `key` of service `svc_idx`: the ticket to
    /// count it by once its session exists, or the reason it is refused.
    /// A frame released after its next hop resolved (`judged`) was judged
    /// when it came: it only gets its ticket.
    pub(super) fn admit(
        &mut self,
        svc_idx: usize,
        key: &FlowKey,
        judged: bool,
        now: Millis,
    ) -> Result<Ticket, DropReason> {
        let svc = &self.tables.services[svc_idx];
        if !judged {
            self.limits.check_acl(&svc.acl, key.src.ip)?;
        }
        let l = &svc.limits;
        let conns = if l.max_conns > 0 {
            svc.servers
                .iter()
                .filter_map(|r| self.rs_conns.get(usize::from(r.index)))
                .fold(0u32, |n, c| n.saturating_add(c.total()))
        } else {
            0
        };
        self.limits.admit(
            l,
            key.dst,
            key.proto,
            key.src.ip,
            conns,
            (self.worker, self.workers),
            !judged,
            now,
        )
    }
}
