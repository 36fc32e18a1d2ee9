//! The exit policy in the receive thread: node/core/exit_policy.py's `ExitPolicy.check`,
//! step for step, on the tables Python compiles (`ExitPolicy.native_tables`) and installs
//! whole at start, at a reload and when the router's addresses change. The thread only
//! sees unfragmented packets without IPv6 extension headers (inner.rs hands the others to
//! Python), so the fragment rules of the Python check never apply here.
//!
//! A rule is (shift, value, proto, port, reason, the reason being its drop counter's
//! key): it matches an address whose bits above `shift` are `value`; with a port, only
//! that destination port, of `proto` or (none) of TCP and UDP. The operator's allow rules are consulted first and win; then the router's
//! own addresses and the deny rules; an IPv6 destination that embeds an IPv4 address
//! (NAT64, 6to4, Teredo) is refused if that address would be.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use crate::inner::TCP;

const UDP: u8 = 17;
const DNS_PORT: i32 = 53;
const V4_MASK: u128 = 0xFFFF_FFFF;
const NAT64_WKP: u128 = 0x0064_FF9B_0000_0000_0000_0000; // 64:ff9b::/96 (RFC 6052 2.1)
const SIX_TO_FOUR: u128 = 0x2002; // 2002::/16 (RFC 3056 section 2)
const TEREDO: u128 = 0x2001_0000; // 2001::/32 (RFC 4380 section 4)

pub struct Rule {
    pub shift: u32,
    pub value: u128,
    pub proto: Option<u8>,
    pub port: Option<u16>,
    pub reason: &'static str,
}

#[derive(Default)]
pub struct Family {
    pub allow: Vec<Rule>,
    pub deny: Vec<Rule>,
    pub own: HashMap<u128, &'static str>,
    pub resolver: HashSet<u128>,
}

#[derive(Default)]
pub struct Policy {
    pub v4: Family,
    pub v6: Family,
}

/// `text` as a static string, made once per distinct text: the drop counters are keyed by
/// static strings, and a rule's reason is its counter's key, "exit_" + the reason. The
/// reasons are few: the policy's fixed list and "operator" for every operator rule.
pub fn intern(text: &str) -> &'static str {
    static KEYS: Mutex<Option<HashMap<String, &'static str>>> = Mutex::new(None);
    let mut keys = KEYS.lock().unwrap_or_else(|e| e.into_inner());
    let map = keys.get_or_insert_with(HashMap::new);
    if let Some(key) = map.get(text) {
        return key;
    }
    let key: &'static str = Box::leak(text.to_string().into_boxed_str());
    map.insert(text.to_string(), key);
    key
}

fn first(rules: &[Rule], addr: u128, proto: u8, dport: i32) -> Option<&'static str> {
    rules.iter().find_map(|r| {
        if addr.checked_shr(r.shift).unwrap_or(0) != r.value {
            return None;
        }
        let port = match r.port {
            None => return Some(r.reason),
            Some(port) => i32::from(port),
        };
        let proto_ok = match r.proto {
            None => proto == TCP || proto == UDP,
            Some(p) => proto == p,
        };
        (dport == port && proto_ok).then_some(r.reason)
    })
}

/// The IPv4 addresses an IPv6 destination embeds (RFC 6052, RFC 3056, RFC 4380).
fn embedded_v4(dst: u128) -> Vec<u128> {
    if dst >> 32 == NAT64_WKP {
        vec![dst & V4_MASK]
    } else if dst >> 112 == SIX_TO_FOUR {
        vec![(dst >> 80) & V4_MASK]
    } else if dst >> 96 == TEREDO {
        vec![(dst >> 64) & V4_MASK, (dst & V4_MASK) ^ V4_MASK]
    } else {
        Vec::new()
    }
}

/// Some(""): an allow rule lets it out; Some(reason): refused; None: no rule says.
fn verdict(f: &Family, addr: u128, proto: u8, dport: i32) -> Option<&'static str> {
    if !f.allow.is_empty() && first(&f.allow, addr, proto, dport).is_some() {
        return Some("");
    }
    f.own.get(&addr).copied().or_else(|| first(&f.deny, addr, proto, dport))
}

impl Policy {
    pub fn family_mut(&mut self, version: u8) -> Option<&mut Family> {
        match version {
            4 => Some(&mut self.v4),
            6 => Some(&mut self.v6),
            _ => None,
        }
    }

    /// None if the packet may leave through the exit, else the reason it may not (its
    /// drop counter's key).
    /// `dport` is -1 where the packet has none (not TCP or UDP, or too short).
    pub fn check(&self, version: u8, dst: u128, proto: u8, dport: i32) -> Option<&'static str> {
        let f = if version == 4 { &self.v4 } else { &self.v6 };
        if dport == DNS_PORT && f.resolver.contains(&dst) && (proto == TCP || proto == UDP) {
            return None;
        }
        match verdict(f, dst, proto, dport) {
            Some("") => return None,
            Some(reason) => return Some(reason),
            None => {}
        }
        if version == 6 {
            for v4 in embedded_v4(dst) {
                if let Some(reason) = verdict(&self.v4, v4, proto, dport).filter(|r| !r.is_empty()) {
                    return Some(reason);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(shift: u32, value: u128, proto: Option<u8>, port: Option<u16>, reason: &'static str) -> Rule {
        Rule { shift, value, proto, port, reason }
    }

    #[test]
    fn allow_wins_then_own_then_deny_and_embedded_v4_counts() {
        let mut p = Policy::default();
        p.v4.deny.push(rule(24, 10, None, None, "private")); // 10.0.0.0/8
        p.v4.deny.push(rule(32, 0, Some(TCP), Some(25), "smtp")); // 0.0.0.0/0 tcp:25
        p.v4.allow.push(rule(0, 0x0A01_0203, None, None, "allowed")); // 10.1.2.3/32
        p.v4.own.insert(0xC0A8_0001, "router");
        p.v6.deny.push(rule(128, 0, Some(TCP), Some(25), "smtp"));
        assert_eq!(p.check(4, 0x0A00_0001, UDP, 53), Some("private"));
        assert_eq!(p.check(4, 0x0A01_0203, UDP, 53), None);
        assert_eq!(p.check(4, 0xC0A8_0001, 1, -1), Some("router"));
        assert_eq!(p.check(4, 0x0808_0808, TCP, 25), Some("smtp"));
        assert_eq!(p.check(4, 0x0808_0808, UDP, 25), None); // the rule names TCP
        assert_eq!(p.check(4, 0x0808_0808, TCP, -1), None);
        let nat64 = (NAT64_WKP << 32) | 0x0A00_0001;
        assert_eq!(p.check(6, nat64, UDP, 1), Some("private"));
        assert_eq!(p.check(6, (NAT64_WKP << 32) | 0x0A01_0203, UDP, 1), None);
        p.v4.resolver.insert(0xC0A8_0001);
        assert_eq!(p.check(4, 0xC0A8_0001, UDP, 53), None);
        assert_eq!(p.check(4, 0xC0A8_0001, UDP, 54), Some("router"));
        assert_eq!(intern("exit_smtp"), "exit_smtp");
        assert!(std::ptr::eq(intern(&"exit_smtp".to_string()), intern("exit_smtp")));
    }
}
