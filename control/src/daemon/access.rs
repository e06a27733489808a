//! `rvsadm acl|limit`: a service's ACL rules and limits, listed with the
//! hits the workers count for each, and changed at run time. A change is
//! checked as the config file's keys are (`config::access`), applied to the
//! live config and published as a new tables snapshot, like every other
//! service edit: workers judge new connections by it from their next
//! burst on; sessions already established are never cut.

use super::*;
use crate::api::{AccessRequest, AccessView};
use crate::config::access::{self, Key};

impl Control {
    pub(super) fn access(&mut self, req: AccessRequest) -> Response {
        let spec = match &req {
            AccessRequest::List(None) => {
                self.refresh();
                return Response::Access(self.access_views(None));
            }
            AccessRequest::List(Some(s)) | AccessRequest::Flush(s) => s,
            AccessRequest::Add { service, .. }
            | AccessRequest::Del { service, .. }
            | AccessRequest::SetLimits { service, .. } => service,
        };
        let (vip, proto, at) = match self.find_service(spec) {
            Ok(x) => x,
            Err(r) => return r,
        };
        if at.is_none() {
            return Response::Error("No such service".into());
        }
        let mut options = self
            .config
            .service_options(vip, proto)
            .cloned()
            .unwrap_or_default();
        match req {
            AccessRequest::List(_) => {
                self.refresh();
                return Response::Access(self.access_views(Some((vip, proto))));
            }
            AccessRequest::Add { rule, at, .. } => {
                let r = match access::parse_rule(&rule, vip) {
                    Ok(r) => r,
                    Err(e) => return Response::Error(e),
                };
                if options.acl.len() >= access::RULES_MAX {
                    return Response::Error(format!(
                        "a service has at most {} ACL rules",
                        access::RULES_MAX
                    ));
                }
                if options.acl.contains(&r) {
                    return Response::Error(format!("rule \"{r}\" exists"));
                }
                match at {
                    None => options.acl.push(r),
                    Some(n) if (1..=options.acl.len() + 1).contains(&n) => {
                        options.acl.insert(n - 1, r);
                    }
                    Some(n) => {
                        return Response::Error(format!(
                            "position {n} is not 1..={}",
                            options.acl.len() + 1
                        ))
                    }
                }
            }
            AccessRequest::Del { rule, .. } => {
                let i = match rule.parse::<usize>() {
                    Ok(n) if (1..=options.acl.len()).contains(&n) => n - 1,
                    Ok(n) => return Response::Error(format!("no rule at position {n}")),
                    Err(_) => {
                        let r = match access::parse_rule(&rule, vip) {
                            Ok(r) => r,
                            Err(e) => return Response::Error(e),
                        };
                        match options.acl.iter().position(|x| *x == r) {
                            Some(i) => i,
                            None => return Response::Error(format!("no rule \"{r}\"")),
                        }
                    }
                };
                options.acl.remove(i);
            }
            AccessRequest::Flush(_) => options.acl.clear(),
            AccessRequest::SetLimits { values, .. } => {
                for (name, v) in values {
                    let Some(key) = Key::from_name(&name) else {
                        return Response::Error(format!("unknown limit {name:?}"));
                    };
                    if let Err(e) = key.set(&mut options.limits, v) {
                        return Response::Error(e);
                    }
                }
            }
        }
        *self.config.service_options_mut(vip, proto) = options;
        self.publish_tables();
        Response::Ok
    }

    /// Hits of counter `what` of service (`vip`, `proto`), all workers.
    fn access_hits(&self, vip: SocketAddr, proto: u8, what: &str) -> u64 {
        let Some(i) = self.registry.counter_of(vip, proto, what) else {
            return 0;
        };
        self.workers
            .iter()
            .filter_map(|w| w.shared.access_hits.get(usize::from(i)))
            .map(|a| a.load(Ordering::Relaxed))
            .sum()
    }

    /// The ACL and limits of every service (or of one), with their hits.
    pub(super) fn access_views(&self, only: Option<(SocketAddr, u8)>) -> Vec<AccessView> {
        let defaults = config::ServiceOptions::default();
        self.config
            .services
            .iter()
            .filter(|s| only.is_none_or(|o| o == (s.vip, s.proto)))
            .map(|s| {
                let o = self
                    .config
                    .service_options(s.vip, s.proto)
                    .unwrap_or(&defaults);
                let rules = o
                    .acl
                    .iter()
                    .map(|r| {
                        let t = r.to_string();
                        let hits = self.access_hits(s.vip, s.proto, &t);
                        (t, hits)
                    })
                    .collect();
                let counted = |k: Key| match k {
                    Key::MaxConns => Some(plan::LIMIT_COUNTERS[0]),
                    Key::MaxConnsPerClient => Some(plan::LIMIT_COUNTERS[1]),
                    Key::NewConnRate => Some(plan::LIMIT_COUNTERS[2]),
                    Key::IcmpRate => Some(plan::LIMIT_COUNTERS[3]),
                    _ => None,
                };
                let limits = Key::ALL
                    .iter()
                    .map(|k| {
                        (
                            k.name().to_string(),
                            k.get(&o.limits),
                            counted(*k).map(|c| self.access_hits(s.vip, s.proto, c)),
                        )
                    })
                    .collect();
                AccessView {
                    service: format!("{}  {}", proto_name(s.proto), s.vip),
                    rules,
                    limits,
                }
            })
            .collect()
    }

    /// `/metrics`: (service label, rule, hits) and (service label, limit,
    /// refusals).
    pub(super) fn access_samples(&self) -> Vec<metrics::AccessSample> {
        let mut out = Vec::new();
        for (s, v) in self.config.services.iter().zip(self.access_views(None)) {
            let label = metrics::service_label(proto_name(s.proto), s.vip);
            for (rule, hits) in v.rules {
                out.push(metrics::AccessSample {
                    service: label.clone(),
                    acl_rule: Some(rule),
                    limit: None,
                    hits,
                });
            }
            for (name, value, hits) in v.limits {
                if let (Some(hits), true) = (hits, value > 0 || name == "icmp_rate") {
                    out.push(metrics::AccessSample {
                        service: label.clone(),
                        acl_rule: None,
                        limit: Some(name),
                        hits,
                    });
                }
            }
        }
        out
    }
}
