//! Identification: which Computer an Agent is (DESIGN.md §4).
//!
//! Everything here is pure: the sync engine loads what the hub knows into an [`IdentityIndex`],
//! asks [`identify`] for each Agent, stores the [`Identification`] with its [`Evidence`], and
//! inserts the newly identified Agent into the index so the next Agent of the same run sees it.
//!
//! The junk lists below are the industry's, not invented here:
//! - CIPP's NinjaOne org mapping drops the serials `0`, `SystemSerialNumber`, `To Be Filled By
//!   O.E.M.`, `System Serial Number`, `0123456789`, `123456789`, `............`
//!   (`KelvinTegelaar/CIPP-API:Modules/CippExtensions/Public/NinjaOne/Invoke-NinjaOneOrgMapping.ps1`).
//! - ImmyBot blocklists the SMBIOS UUIDs `03000200-0400-0500-0006-000700080009`, all zeros and all
//!   F, and sends the rest of the doubt to "Needs a Manual Decision"
//!   (`immense/immybot-documentation:Documentation/Troubleshooting/troubleshooting.md`, releases 2021-2023).
//! - HaloPSA's asset import has "matching value exclusions" for exactly this (`None`, `Default
//!   string`, ...): <https://halopsa.com/guides/article/?kbid=1096>.
//! - The rest are the SMBIOS defaults of AMI/Insyde BIOS templates and hypervisors that show up in
//!   every MSP's inventory (`Default string`, `Not Specified`, `Chassis Serial Number`, `INVALID`, ...).

use crate::rmm::RmmDevice;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

// ---------------------------------------------------------------------------------------------
// Normalisers and junk filters
// ---------------------------------------------------------------------------------------------

/// Serials that are BIOS placeholders, compared with everything but letters and digits removed and
/// upper-cased, so "System Serial Number", "SystemSerialNumber" and "system_serial_number" are one.
const JUNK_SERIALS: &[&str] = &[
    "TOBEFILLEDBYOEM",
    "TOBEFILLEDBYOEM0",
    "SYSTEMSERIALNUMBER",
    "CHASSISSERIALNUMBER",
    "BASEBOARDSERIALNUMBER",
    "SERIALNUMBER",
    "SYSTEMSERIAL",
    "DEFAULTSTRING",
    "DEFAULT",
    "NONE",
    "NULL",
    "NA",
    "NOTAPPLICABLE",
    "NOTAVAILABLE",
    "NOTSPECIFIED",
    "NOTDEFINED",
    "UNDEFINED",
    "UNKNOWN",
    "INVALID",
    "EMPTY",
    "OEM",
    "NOSERIAL",
    "NOSERIALNUMBER",
    "0123456789",
    "123456789",
    "1234567890",
    "12345678",
    "1234567",
    "123456",
    "0123456789ABCDEF",
];

/// Shorter than this (letters and digits only) is not a serial anyone shipped: "0", "1", "A1".
const MIN_SERIAL_LEN: usize = 4;

/// A serial worth comparing: trimmed, upper-cased, inner whitespace collapsed; `None` for BIOS
/// placeholders, repeated characters ("00000000", "XXXXXXX", "............") and tiny values.
/// VMware-style serials ("VMware-56 4d ...") are real: VMware derives them from the VM's UUID.
pub fn normalise_serial(raw: &str) -> Option<String> {
    let trimmed = raw.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    if trimmed.is_empty() {
        return None;
    }
    let squashed: String = trimmed
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_uppercase)
        .collect();
    if squashed.chars().count() < MIN_SERIAL_LEN || JUNK_SERIALS.contains(&squashed.as_str()) {
        return None;
    }
    let mut chars = squashed.chars();
    let first = chars.next()?;
    if chars.all(|c| c == first) {
        return None;
    }
    Some(
        trimmed
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_uppercase(),
    )
}

/// SMBIOS UUIDs that many machines share, as 32 lower-case hex digits.
const JUNK_UUIDS: &[&str] = &[
    // ImmyBot's blocklist: AMI's template value on countless Gigabyte/ASRock/white-box boards.
    "03000200040005000006000700080009",
    // The same template with the first three fields byte-swapped, as older readers print it.
    "00020003000400050006000700080009",
    // Sequential template values of other BIOS vendors.
    "12345678123456789012345678901234",
    "0123456789abcdef0123456789abcdef",
];

/// A UUID worth comparing, as lower-case 8-4-4-4-12; `None` for malformed values, the known
/// template UUIDs, and UUIDs that are nearly all zeros or all F (`...-000000000001` and friends).
pub fn normalise_uuid(raw: &str) -> Option<String> {
    let hex: String = raw
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .chars()
        .filter(|c| *c != '-')
        .flat_map(char::to_lowercase)
        .collect();
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let zeros = hex.chars().filter(|&c| c == '0').count();
    let effs = hex.chars().filter(|&c| c == 'f').count();
    // A real UUID (random or vendor-derived) has a handful of zero nibbles; 28 of 32 is a placeholder.
    if zeros >= 28 || effs >= 28 || JUNK_UUIDS.contains(&hex.as_str()) {
        return None;
    }
    Some(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

/// Globally administered MACs that are the same on every machine that has them: software adapters,
/// not hardware. Locally administered ones (Docker `02:42:..`, VirtualBox host-only `0a:00:27:..`,
/// Npcap loopback `02:00:4c:4f:4f:50`, GlobalProtect `02:50:41:..`, Wi-Fi Direct, randomised Wi-Fi)
/// are dropped by the bit test and need no entry.
const PLACEHOLDER_MACS: &[u64] = &[
    0x00_05_9a_3c_7a_00, // Cisco AnyConnect virtual miniport adapter: one MAC for every install.
    0x20_41_53_59_4e_ff, // Windows RAS async adapter ("  ASYN" in ASCII).
    0x50_50_54_50_30_30, // WAN Miniport (PPTP) ("PPTP00").
    0x00_53_45_00_00_00, // WAN Miniport (IP/IPv6/Network Monitor).
    0xac_de_48_00_11_22, // Apple T2 iBridge interface: identical on every T2 Mac.
];

/// Prefixes (first three octets) of adapters that are not a machine's own NIC.
const PLACEHOLDER_PREFIXES: &[(u64, &str)] = &[(0x00_00_00, "null OUI: tunnel and unset adapters")];

fn mac_is_placeholder(mac: u64) -> bool {
    if PLACEHOLDER_MACS.contains(&mac) {
        return true;
    }
    let oui = mac >> 24;
    if PLACEHOLDER_PREFIXES.iter().any(|(p, _)| *p == oui) {
        return true;
    }
    // TAP-Windows (OpenVPN) adapters are 00:ff:xx:..: random, but a VPN client, not the machine.
    if mac >> 40 == 0x00 && (mac >> 32) & 0xff == 0xff {
        return true;
    }
    // VMware Workstation/Player host adapters VMnet1..VMnet19 are 00:50:56:c0:00:xx on every host.
    // VMware *VM* NICs (00:50:56 elsewhere, 00:0c:29) are kept: a VM is a machine we identify.
    if mac >> 8 == 0x00_50_56_c0_00 {
        return true;
    }
    false
}

fn parse_mac(raw: &str) -> Option<u64> {
    let hex: String = raw
        .trim()
        .chars()
        .filter(|c| !matches!(c, ':' | '-' | '.' | ' '))
        .collect();
    if hex.len() != 12 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(&hex, 16).ok()
}

fn format_mac(mac: u64) -> String {
    let b = mac.to_be_bytes();
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[2], b[3], b[4], b[5], b[6], b[7]
    )
}

/// A MAC worth comparing, as `aa:bb:cc:dd:ee:ff`, from `AA:BB:..`, `aa-bb-..`, `aabb.ccdd.eeff` or
/// `aabbccddeeff`. `None` for malformed, all-zero, broadcast, multicast and locally administered
/// addresses and the software adapters in [`PLACEHOLDER_MACS`].
///
/// Kept on purpose: Hyper-V `00:15:5d`, VMware `00:50:56`/`00:0c:29`, VirtualBox `08:00:27` and
/// Parallels `00:1c:42` VM NICs, because those VMs are Computers, and rule 4 only links on a MAC
/// when the hostnames agree as well.
pub fn normalise_mac(raw: &str) -> Option<String> {
    mac_value(raw).map(format_mac)
}

fn mac_value(raw: &str) -> Option<u64> {
    let mac = parse_mac(raw)?;
    let first = (mac >> 40) as u8;
    if mac == 0 || mac == 0xffff_ffff_ffff || first & 0x01 != 0 || first & 0x02 != 0 {
        return None;
    }
    (!mac_is_placeholder(mac)).then_some(mac)
}

/// The host part of a hostname, lower-cased: N-central's `longName` "ACCT-PC1" and NinjaOne's
/// `dnsName` "acct-pc1.corp.example" are one name. IP addresses are kept whole.
pub fn normalise_hostname(raw: &str) -> String {
    let h = raw.trim().trim_end_matches('.').to_lowercase();
    let is_ip = h.parse::<std::net::IpAddr>().is_ok();
    if is_ip {
        return h;
    }
    match h.split_once('.') {
        Some((host, _)) => host.trim().to_owned(),
        None => h,
    }
}

/// NetBIOS names are cut at 15 characters, so "ACCOUNTING-WORKS" is "ACCOUNTING-WORK" in one RMM.
const NETBIOS_LEN: usize = 15;

/// Hostnames that carry no identity: default or failed names many machines share.
const GENERIC_HOSTNAMES: &[&str] = &["localhost", "unknown", "none", "null", "-", "computer"];

/// Whether two hostnames name the same machine: equal after [`normalise_hostname`], or one is the
/// 15-character NetBIOS truncation of the other. Empty and generic names never agree.
pub fn hostnames_agree(a: &str, b: &str) -> bool {
    let (a, b) = (normalise_hostname(a), normalise_hostname(b));
    if a.is_empty() || b.is_empty() || GENERIC_HOSTNAMES.contains(&a.as_str()) {
        return false;
    }
    if a == b {
        return true;
    }
    let (short, long) = if a.len() < b.len() {
        (&a, &b)
    } else {
        (&b, &a)
    };
    short.chars().count() == NETBIOS_LEN && long.starts_with(short.as_str())
}

fn hostname_is_usable(h: &str) -> bool {
    let n = normalise_hostname(h);
    !n.is_empty() && !GENERIC_HOSTNAMES.contains(&n.as_str())
}

/// The identifiers of one Agent, normalised once: what identification compares.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HardwareIds {
    pub uuid: Option<String>,
    pub serial: Option<String>,
    /// Normalised, sorted, without duplicates.
    pub macs: Vec<String>,
    /// As the RMM reports it (trimmed), so evidence shows what was compared; compared with
    /// [`hostnames_agree`].
    pub hostname: String,
}

impl HardwareIds {
    /// From raw values as an RMM or a stored Agent row has them; junk is dropped here.
    pub fn from_raw<S: AsRef<str>>(
        hostname: &str,
        serial: Option<&str>,
        uuid: Option<&str>,
        macs: &[S],
    ) -> HardwareIds {
        let mut m: Vec<u64> = macs.iter().filter_map(|s| mac_value(s.as_ref())).collect();
        m.sort_unstable();
        m.dedup();
        HardwareIds {
            uuid: uuid.and_then(normalise_uuid),
            serial: serial.and_then(normalise_serial),
            macs: m.into_iter().map(format_mac).collect(),
            hostname: hostname.trim().to_owned(),
        }
    }

    pub fn from_device(d: &RmmDevice) -> HardwareIds {
        HardwareIds::from_raw(
            &d.hostname,
            d.serial.as_deref(),
            d.smbios_uuid.as_deref(),
            &d.macs,
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The index of what the hub already knows
// ---------------------------------------------------------------------------------------------

/// An Agent the hub already has, with what identification needs to know about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownAgent {
    pub agent_id: i64,
    pub integration_id: i64,
    /// `None` while the Agent waits for a ManualDecision: nothing can be linked to it.
    pub computer_id: Option<i64>,
    /// The Tenant its RmmClient is mapped to; hostname matching only looks inside one Tenant.
    pub tenant_id: Option<i64>,
    /// Active: neither missing nor retired. Two live Agents of one integration sharing a hardware id
    /// are clones.
    pub live: bool,
    /// Vanished from its RMM within the grace period. A new Agent with its hardware ids is a
    /// reinstall. (Retired Agents, neither live nor missing, count as reinstall candidates too: the
    /// Computer keeps its identity for rediscovery.)
    pub missing: bool,
    pub ids: HardwareIds,
}

const F_LIVE: u8 = 1;
const F_MISSING: u8 = 2;
const F_UUID: u8 = 4;
const F_SERIAL: u8 = 8;
const F_COMPUTER: u8 = 16;
const F_TENANT: u8 = 32;
const F_REMOVED: u8 = 64;

/// A string in the index's text arena.
#[derive(Clone, Copy, Debug, Default)]
struct TextRef {
    off: u32,
    len: u16,
}

/// One Agent, 72 bytes, its strings and MACs in shared arenas: no allocation per Agent.
#[derive(Clone, Copy, Debug)]
struct Slot {
    agent_id: i64,
    integration_id: i64,
    computer_id: i64,
    tenant_id: i64,
    uuid: [u64; 2],
    serial: TextRef,
    hostname: TextRef,
    mac_off: u32,
    mac_len: u8,
    flags: u8,
}

impl Slot {
    fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }
    fn computer(&self) -> Option<i64> {
        self.has(F_COMPUTER).then_some(self.computer_id)
    }
    fn tenant(&self) -> Option<i64> {
        self.has(F_TENANT).then_some(self.tenant_id)
    }
    fn live(&self) -> bool {
        self.has(F_LIVE)
    }
}

/// The Agents sharing one key: one position inline, more in an overflow list.
const MANY: u32 = 1 << 31;

/// FNV-1a: a fixed, portable hash for the index keys (collisions are checked against the slot).
fn fnv(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn uuid_words(u: &str) -> Option<[u64; 2]> {
    let hex: String = u.chars().filter(|c| *c != '-').collect();
    let v = u128::from_str_radix(&hex, 16).ok()?;
    Some([(v >> 64) as u64, v as u64])
}

fn uuid_string(w: [u64; 2]) -> String {
    let v = (u128::from(w[0]) << 64) | u128::from(w[1]);
    let h = format!("{v:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn host_key(tenant: i64, hostname: &str) -> u64 {
    fnv(&[
        &tenant.to_le_bytes(),
        normalise_hostname(hostname).as_bytes(),
    ])
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Key {
    Uuid,
    Serial,
    Mac,
    Host,
}

/// Everything the hub knows about Agents, indexed by every hardware id, for identifying a whole
/// SyncRun without a database round trip per Agent.
///
/// Memory: Agents live in one `Vec` of 72-byte slots with their strings and MACs in two arenas, and
/// the five hash maps hold `u64 -> u32` (16-byte entries). [`IdentityIndex::approx_heap_bytes`]
/// reports ~300 bytes per Agent (about 60 MB at 200,000 Agents, growth slack included; measured in
/// `two_hundred_thousand_agents_fit_in_well_under_100_mb`). A `HashMap<String, Vec<KnownAgent>>` per
/// id would be 3-4 times that.
#[derive(Debug, Default)]
pub struct IdentityIndex {
    slots: Vec<Slot>,
    free_slots: Vec<u32>,
    text: Vec<u8>,
    macs: Vec<u64>,
    /// Arena bytes/entries no slot refers to any more; compacted when they dominate.
    garbage_text: usize,
    garbage_macs: usize,
    by_agent: HashMap<i64, u32>,
    by_uuid: HashMap<u64, u32>,
    by_serial: HashMap<u64, u32>,
    by_mac: HashMap<u64, u32>,
    by_host: HashMap<u64, u32>,
    overflow: Vec<Vec<u32>>,
    free_overflow: Vec<u32>,
}

impl IdentityIndex {
    pub fn new() -> IdentityIndex {
        IdentityIndex::default()
    }

    pub fn from_agents(agents: impl IntoIterator<Item = KnownAgent>) -> IdentityIndex {
        let mut idx = IdentityIndex::new();
        for a in agents {
            idx.insert(a);
        }
        idx
    }

    pub fn len(&self) -> usize {
        self.by_agent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_agent.is_empty()
    }

    /// Adds an Agent, or replaces the one with the same `agent_id`.
    pub fn insert(&mut self, agent: KnownAgent) {
        if self.by_agent.contains_key(&agent.agent_id) {
            self.remove(agent.agent_id);
        }
        let slot = self.make_slot(&agent);
        let pos = match self.free_slots.pop() {
            Some(p) => {
                self.slots[p as usize] = slot;
                p
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        };
        self.by_agent.insert(agent.agent_id, pos);
        self.link_keys(pos);
    }

    /// Forgets an Agent (deleted for good, or merged away). Returns whether it was there.
    pub fn remove(&mut self, agent_id: i64) -> bool {
        let Some(pos) = self.by_agent.remove(&agent_id) else {
            return false;
        };
        self.unlink_keys(pos);
        let s = self.slots[pos as usize];
        self.garbage_text += usize::from(s.serial.len) + usize::from(s.hostname.len);
        self.garbage_macs += usize::from(s.mac_len);
        self.slots[pos as usize].flags = F_REMOVED;
        self.free_slots.push(pos);
        self.maybe_compact();
        true
    }

    /// Records the Computer an Agent was linked to (or `None` when it went to a ManualDecision).
    pub fn update_computer(&mut self, agent_id: i64, computer_id: Option<i64>) -> bool {
        let Some(&pos) = self.by_agent.get(&agent_id) else {
            return false;
        };
        let s = &mut self.slots[pos as usize];
        match computer_id {
            Some(c) => {
                s.computer_id = c;
                s.flags |= F_COMPUTER;
            }
            None => s.flags &= !F_COMPUTER,
        }
        true
    }

    /// Records a lifecycle transition (missing, retired, rediscovered).
    pub fn update_state(&mut self, agent_id: i64, live: bool, missing: bool) -> bool {
        let Some(&pos) = self.by_agent.get(&agent_id) else {
            return false;
        };
        let s = &mut self.slots[pos as usize];
        s.flags &= !(F_LIVE | F_MISSING);
        if live {
            s.flags |= F_LIVE;
        }
        if missing {
            s.flags |= F_MISSING;
        }
        true
    }

    /// Records new hardware ids or a new Tenant (the RMM reported changed facts).
    pub fn update_ids(&mut self, agent_id: i64, tenant_id: Option<i64>, ids: HardwareIds) -> bool {
        let Some(mut agent) = self.get(agent_id) else {
            return false;
        };
        agent.tenant_id = tenant_id;
        agent.ids = ids;
        self.insert(agent);
        true
    }

    /// The Agent as it was inserted (identifiers in normalised form).
    pub fn get(&self, agent_id: i64) -> Option<KnownAgent> {
        let pos = *self.by_agent.get(&agent_id)?;
        Some(self.known(pos))
    }

    /// Bytes this index holds on the heap, from capacities (hash maps estimated from their layout:
    /// one control byte plus the entry per bucket, buckets a power of two at most 7/8 full).
    pub fn approx_heap_bytes(&self) -> usize {
        fn map<K, V>(m: &HashMap<K, V>) -> usize {
            let cap = m.capacity();
            if cap == 0 {
                return 0;
            }
            let buckets = (cap * 8 / 7).next_power_of_two();
            buckets * (std::mem::size_of::<(K, V)>() + 1)
        }
        self.slots.capacity() * std::mem::size_of::<Slot>()
            + self.free_slots.capacity() * 4
            + self.text.capacity()
            + self.macs.capacity() * 8
            + map(&self.by_agent)
            + map(&self.by_uuid)
            + map(&self.by_serial)
            + map(&self.by_mac)
            + map(&self.by_host)
            + self.overflow.capacity() * std::mem::size_of::<Vec<u32>>()
            + self
                .overflow
                .iter()
                .map(|v| v.capacity() * 4)
                .sum::<usize>()
            + self.free_overflow.capacity() * 4
    }

    fn push_text(&mut self, s: &str) -> TextRef {
        // Hostnames are at most 253 bytes and serials shorter; anything longer is cut, not lost.
        let mut end = s.len().min(u16::MAX as usize);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        let off = self.text.len() as u32;
        self.text.extend_from_slice(&s.as_bytes()[..end]);
        TextRef {
            off,
            len: end as u16,
        }
    }

    fn text(&self, r: TextRef) -> &str {
        let bytes = &self.text[r.off as usize..r.off as usize + usize::from(r.len)];
        std::str::from_utf8(bytes).unwrap_or("")
    }

    fn slot_macs(&self, s: &Slot) -> &[u64] {
        &self.macs[s.mac_off as usize..s.mac_off as usize + usize::from(s.mac_len)]
    }

    fn make_slot(&mut self, a: &KnownAgent) -> Slot {
        let mut flags = 0;
        if a.live {
            flags |= F_LIVE;
        }
        if a.missing {
            flags |= F_MISSING;
        }
        let uuid = a.ids.uuid.as_deref().and_then(normalise_uuid);
        let uuid = uuid.as_deref().and_then(uuid_words);
        if uuid.is_some() {
            flags |= F_UUID;
        }
        let serial = a.ids.serial.as_deref().and_then(normalise_serial);
        let serial = match serial {
            Some(s) => {
                flags |= F_SERIAL;
                self.push_text(&s)
            }
            None => TextRef::default(),
        };
        if a.computer_id.is_some() {
            flags |= F_COMPUTER;
        }
        if a.tenant_id.is_some() {
            flags |= F_TENANT;
        }
        let hostname = self.push_text(a.ids.hostname.trim());
        let mut macs: Vec<u64> = a.ids.macs.iter().filter_map(|m| mac_value(m)).collect();
        macs.sort_unstable();
        macs.dedup();
        macs.truncate(u8::MAX as usize);
        let mac_off = self.macs.len() as u32;
        self.macs.extend_from_slice(&macs);
        Slot {
            agent_id: a.agent_id,
            integration_id: a.integration_id,
            computer_id: a.computer_id.unwrap_or(0),
            tenant_id: a.tenant_id.unwrap_or(0),
            uuid: uuid.unwrap_or([0, 0]),
            serial,
            hostname,
            mac_off,
            mac_len: macs.len() as u8,
            flags,
        }
    }

    fn known(&self, pos: u32) -> KnownAgent {
        let s = &self.slots[pos as usize];
        KnownAgent {
            agent_id: s.agent_id,
            integration_id: s.integration_id,
            computer_id: s.computer(),
            tenant_id: s.tenant(),
            live: s.live(),
            missing: s.has(F_MISSING),
            ids: HardwareIds {
                uuid: s.has(F_UUID).then(|| uuid_string(s.uuid)),
                serial: s.has(F_SERIAL).then(|| self.text(s.serial).to_owned()),
                macs: self.slot_macs(s).iter().map(|m| format_mac(*m)).collect(),
                hostname: self.text(s.hostname).to_owned(),
            },
        }
    }

    /// The (key kind, hash) pairs an Agent is filed under.
    fn keys_of(&self, pos: u32) -> Vec<(Key, u64)> {
        let s = &self.slots[pos as usize];
        let mut keys = Vec::with_capacity(3 + usize::from(s.mac_len));
        if s.has(F_UUID) {
            keys.push((Key::Uuid, s.uuid[0] ^ s.uuid[1].rotate_left(29)));
        }
        if s.has(F_SERIAL) {
            keys.push((Key::Serial, fnv(&[self.text(s.serial).as_bytes()])));
        }
        for &m in self.slot_macs(s) {
            keys.push((Key::Mac, m));
        }
        if let Some(t) = s.tenant()
            && hostname_is_usable(self.text(s.hostname))
        {
            keys.push((Key::Host, host_key(t, self.text(s.hostname))));
        }
        keys
    }

    fn map_mut(&mut self, k: Key) -> &mut HashMap<u64, u32> {
        match k {
            Key::Uuid => &mut self.by_uuid,
            Key::Serial => &mut self.by_serial,
            Key::Mac => &mut self.by_mac,
            Key::Host => &mut self.by_host,
        }
    }

    fn map(&self, k: Key) -> &HashMap<u64, u32> {
        match k {
            Key::Uuid => &self.by_uuid,
            Key::Serial => &self.by_serial,
            Key::Mac => &self.by_mac,
            Key::Host => &self.by_host,
        }
    }

    fn link_keys(&mut self, pos: u32) {
        for (k, h) in self.keys_of(pos) {
            match self.map(k).get(&h).copied() {
                None => {
                    self.map_mut(k).insert(h, pos);
                }
                Some(p) if p & MANY != 0 => self.overflow[(p & !MANY) as usize].push(pos),
                Some(p) => {
                    let list = vec![p, pos];
                    let i = match self.free_overflow.pop() {
                        Some(i) => {
                            self.overflow[i as usize] = list;
                            i
                        }
                        None => {
                            self.overflow.push(list);
                            (self.overflow.len() - 1) as u32
                        }
                    };
                    self.map_mut(k).insert(h, i | MANY);
                }
            }
        }
    }

    fn unlink_keys(&mut self, pos: u32) {
        for (k, h) in self.keys_of(pos) {
            let Some(p) = self.map(k).get(&h).copied() else {
                continue;
            };
            if p & MANY == 0 {
                if p == pos {
                    self.map_mut(k).remove(&h);
                }
                continue;
            }
            let i = (p & !MANY) as usize;
            let list = &mut self.overflow[i];
            list.retain(|&x| x != pos);
            if list.len() == 1 {
                let only = list[0];
                self.overflow[i] = Vec::new();
                self.free_overflow.push(i as u32);
                self.map_mut(k).insert(h, only);
            }
        }
    }

    fn positions(&self, k: Key, h: u64) -> &[u32] {
        match self.map(k).get(&h) {
            None => &[],
            Some(p) if p & MANY != 0 => &self.overflow[(p & !MANY) as usize],
            Some(p) => std::slice::from_ref(p),
        }
    }

    /// Rewrites the arenas when most of them is garbage from updates and removals.
    fn maybe_compact(&mut self) {
        let text_heavy = self.garbage_text > 1 << 20 && self.garbage_text * 2 > self.text.len();
        let macs_heavy = self.garbage_macs > 1 << 17 && self.garbage_macs * 2 > self.macs.len();
        if !text_heavy && !macs_heavy {
            return;
        }
        let mut text = Vec::with_capacity(self.text.len() - self.garbage_text);
        let mut macs = Vec::with_capacity(self.macs.len() - self.garbage_macs);
        for i in 0..self.slots.len() {
            let s = self.slots[i];
            if s.has(F_REMOVED) {
                continue;
            }
            let mut moved = s;
            for (r, new) in [
                (s.serial, &mut moved.serial),
                (s.hostname, &mut moved.hostname),
            ] {
                let off = text.len() as u32;
                text.extend_from_slice(
                    &self.text[r.off as usize..r.off as usize + usize::from(r.len)],
                );
                *new = TextRef { off, len: r.len };
            }
            moved.mac_off = macs.len() as u32;
            macs.extend_from_slice(self.slot_macs(&s));
            self.slots[i] = moved;
        }
        self.text = text;
        self.macs = macs;
        self.garbage_text = 0;
        self.garbage_macs = 0;
    }

    /// Agents other than `except` carrying this exact value, in agent id order.
    fn holders(&self, key: Key, value: &str, except: i64) -> Vec<&Slot> {
        let mut out: Vec<&Slot> = match key {
            Key::Uuid => {
                let Some(w) = uuid_words(value) else {
                    return Vec::new();
                };
                self.positions(key, w[0] ^ w[1].rotate_left(29))
                    .iter()
                    .map(|&p| &self.slots[p as usize])
                    .filter(|s| s.has(F_UUID) && s.uuid == w)
                    .collect()
            }
            Key::Serial => self
                .positions(key, fnv(&[value.as_bytes()]))
                .iter()
                .map(|&p| &self.slots[p as usize])
                .filter(|s| s.has(F_SERIAL) && self.text(s.serial) == value)
                .collect(),
            Key::Mac => {
                let Some(m) = parse_mac(value) else {
                    return Vec::new();
                };
                self.positions(key, m)
                    .iter()
                    .map(|&p| &self.slots[p as usize])
                    .filter(|s| self.slot_macs(s).contains(&m))
                    .collect()
            }
            Key::Host => Vec::new(),
        };
        out.retain(|s| s.agent_id != except && !s.has(F_REMOVED));
        out.sort_by_key(|s| s.agent_id);
        out
    }

    fn hostname_holders(&self, tenant: i64, hostname: &str, except: i64) -> Vec<&Slot> {
        let mut out: Vec<&Slot> = self
            .positions(Key::Host, host_key(tenant, hostname))
            .iter()
            .map(|&p| &self.slots[p as usize])
            .filter(|s| {
                s.agent_id != except
                    && !s.has(F_REMOVED)
                    && s.tenant() == Some(tenant)
                    && normalise_hostname(self.text(s.hostname)) == normalise_hostname(hostname)
            })
            .collect();
        out.sort_by_key(|s| s.agent_id);
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Identification
// ---------------------------------------------------------------------------------------------

/// The Agent being identified. Its row already exists (the sync engine upserted it), which is why
/// rule 1 of DESIGN.md §4, "same integration and same external id", never reaches [`identify`]: the
/// caller finds the Agent by its key, keeps its Computer, and records [`Evidence::same_agent`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incoming {
    pub agent_id: i64,
    pub integration_id: i64,
    /// The Tenant its RmmClient is mapped to.
    pub tenant_id: Option<i64>,
    /// The integration's "allow duplicates" option: skip cross-integration matching.
    pub allow_duplicates: bool,
    pub ids: HardwareIds,
}

/// The rule that decided, stored with every link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    SameAgent,
    SmbiosUuid,
    Serial,
    Mac,
    Hostname,
    Manual,
    New,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::SameAgent => "same_agent",
            Rule::SmbiosUuid => "smbios_uuid",
            Rule::Serial => "serial",
            Rule::Mac => "mac",
            Rule::Hostname => "hostname",
            Rule::Manual => "manual",
            Rule::New => "new",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Rule::SameAgent => "external id",
            Rule::SmbiosUuid => "SMBIOS UUID",
            Rule::Serial => "serial number",
            Rule::Mac => "MAC address",
            Rule::Hostname => "hostname",
            Rule::Manual => "admin decision",
            Rule::New => "nothing",
        }
    }
}

/// Why an identification waits for an admin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ManualKind {
    /// One rule points at two or more Computers.
    Ambiguous,
    /// Only the hostname matches, inside the Tenant: never automatic.
    HostnameOnly,
    /// Two rules point at different Computers (UUID says A, serial says B).
    Conflict,
    /// Another live Agent of the same integration has the same hardware ids and the same name:
    /// a reinstall whose old Agent the RMM still lists, or an image copied without renaming.
    ReinstallOrClone,
}

impl ManualKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ManualKind::Ambiguous => "ambiguous",
            ManualKind::HostnameOnly => "hostname_only",
            ManualKind::Conflict => "conflict",
            ManualKind::ReinstallOrClone => "reinstall_or_clone",
        }
    }
}

/// The values compared, so every decision can be shown as "why". Reads back what was stored:
/// fields a record lacks take their defaults, fields it has beyond these are ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Evidence {
    pub rule: Option<Rule>,
    /// The identifier that matched (UUID, serial, MAC or hostname).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The hostname of the Agent being identified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname_a: Option<String>,
    /// The hostname of the Agent it was matched with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname_b: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched_agent_id: Option<i64>,
    /// The integration of the matched Agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integration_id: Option<i64>,
    /// Every Computer the deciding rule pointed at (more than one: ambiguous).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub candidate_computer_ids: Vec<i64>,
    /// Live Agents of the same integration sharing the UUID or serial: clones.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub clone_of: Vec<i64>,
    /// Identifiers left out because live Agents share them (clones), as `kind value`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unusable: Vec<String>,
    /// The matched Agent is filed under another Tenant: the machine may have moved between clients.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tenant_mismatch: bool,
    /// For a conflict: what the other rule said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conflicting: Option<Box<Evidence>>,
}

impl Evidence {
    /// Rule 1, recorded by the caller: the RMM reported an Agent the hub already has.
    pub fn same_agent(agent_id: i64, integration_id: i64) -> Evidence {
        Evidence {
            rule: Some(Rule::SameAgent),
            matched_agent_id: Some(agent_id),
            integration_id: Some(integration_id),
            ..Evidence::default()
        }
    }

    /// One sentence of "why", naming integrations by id.
    pub fn explain(&self) -> String {
        self.explain_with(|id| format!("integration {id}"))
    }

    /// One sentence of "why", with integrations named by the caller ("N-central", "NinjaOne EU").
    pub fn explain_with(&self, integration: impl Fn(i64) -> String) -> String {
        self.explain_dyn(&integration)
    }

    fn explain_dyn(&self, integration: &dyn Fn(i64) -> String) -> String {
        let of_agent = || match (self.matched_agent_id, self.integration_id) {
            (Some(a), Some(i)) => format!("agent #{a} of {}", integration(i)),
            (Some(a), None) => format!("agent #{a}"),
            _ => "another agent".to_owned(),
        };
        let value = self.value.as_deref().unwrap_or("?");
        let hosts = match (&self.hostname_a, &self.hostname_b) {
            (Some(a), Some(b)) => format!(", hostnames {a:?} and {b:?} agree"),
            _ => String::new(),
        };
        let mut s = match self.rule {
            Some(Rule::SameAgent) => format!("Same external id as {}", of_agent()),
            Some(Rule::SmbiosUuid) => {
                format!("Same SMBIOS UUID {value} as {}", of_agent())
            }
            Some(r @ (Rule::Serial | Rule::Mac)) => {
                format!("Same {} {value} as {}{hosts}", r.label(), of_agent())
            }
            Some(Rule::Hostname) => format!(
                "Only the hostname {value:?} matches {} in the same tenant",
                of_agent()
            ),
            Some(Rule::Manual) => "Decided by an admin".to_owned(),
            Some(Rule::New) | None => {
                if self.clone_of.is_empty() {
                    "No other agent shares a usable SMBIOS UUID, serial number or MAC address"
                        .to_owned()
                } else {
                    let ids: Vec<String> = self.clone_of.iter().map(i64::to_string).collect();
                    format!(
                        "Clone: live agent(s) {} of the same integration report the same hardware ids, so they stay separate computers",
                        ids.join(", ")
                    )
                }
            }
        };
        if self.candidate_computer_ids.len() > 1 {
            let ids: Vec<String> = self
                .candidate_computer_ids
                .iter()
                .map(i64::to_string)
                .collect();
            s.push_str(&format!(", which points at computers {}", ids.join(", ")));
        }
        if let Some(c) = &self.conflicting {
            let other = c.explain_dyn(integration);
            s.push_str(&format!(", but {}", lower_first(&other)));
        }
        if self.tenant_mismatch {
            s.push_str(" (filed under another tenant there)");
        }
        s
    }
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// What identification decided for one Agent.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Identification {
    /// The Agent is this Computer. `reinstall`: it replaces a missing Agent of its own integration.
    Link {
        computer_id: i64,
        rule: Rule,
        evidence: Evidence,
        reinstall: bool,
    },
    /// Nothing matched: a new Computer. `clone_of`: live Agents of the same integration that share
    /// its hardware ids, flagged so an admin can see the clone family.
    NewComputer {
        evidence: Evidence,
        clone_of: Vec<i64>,
    },
    /// A ManualDecision: the hub will not guess.
    Manual {
        kind: ManualKind,
        candidate_computer_id: Option<i64>,
        reason: String,
        evidence: Evidence,
    },
}

impl Identification {
    pub fn evidence(&self) -> &Evidence {
        match self {
            Identification::Link { evidence, .. }
            | Identification::NewComputer { evidence, .. }
            | Identification::Manual { evidence, .. } => evidence,
        }
    }
}

/// One Agent a rule can link to.
#[derive(Clone, Debug)]
struct Hit {
    computer_id: i64,
    agent_id: i64,
    integration_id: i64,
    hostname: String,
    tenant: Option<i64>,
    reinstall: bool,
    value: String,
}

#[derive(Default)]
struct RuleHits {
    hits: Vec<Hit>,
}

impl RuleHits {
    fn computers(&self) -> Vec<i64> {
        let mut c: Vec<i64> = self.hits.iter().map(|h| h.computer_id).collect();
        c.sort_unstable();
        c.dedup();
        c
    }

    /// The hit shown as evidence: a reinstall's own missing Agent first, then the lowest agent id.
    fn best_for(&self, computer: i64) -> Option<&Hit> {
        self.hits
            .iter()
            .filter(|h| h.computer_id == computer)
            .min_by_key(|h| (!h.reinstall, h.agent_id, h.value.clone()))
    }
}

/// Decides which Computer `agent` is, from what `index` knows. Deterministic: the result does not
/// depend on the order Agents were inserted into the index.
///
/// Rules in order (DESIGN.md §4): SMBIOS UUID; serial with agreeing hostnames; MAC with agreeing
/// hostnames; hostname alone inside the Tenant, which only ever yields a ManualDecision.
/// - A value shared with another *live* Agent of the same integration is a clone's: unusable, and
///   the Agent becomes a new Computer flagged `clone_of` (UUID and serial only: a shared MAC is
///   usually a USB dock or adapter moving between laptops). So is a value that two live Agents of
///   another integration share while pointing at different Computers.
/// - A value shared with a *missing* (or retired) Agent of the same integration is a reinstall:
///   linked to that Agent's Computer with `reinstall: true`, even with "allow duplicates".
/// - Agents of other integrations are candidates unless `allow_duplicates`.
/// - Agents without a Computer (waiting for a ManualDecision) are never linked to.
/// - One rule pointing at two Computers is `ambiguous`; a later rule pointing elsewhere than the
///   deciding one is a `conflict`.
pub fn identify(agent: &Incoming, index: &IdentityIndex) -> Identification {
    let ids = &agent.ids;
    let mut clone_of: Vec<i64> = Vec::new();
    let mut clone_same_name: Vec<(i64, Option<i64>)> = Vec::new();
    let mut unusable: Vec<String> = Vec::new();
    let uuid = ids.uuid.as_deref().and_then(normalise_uuid);
    let serial = ids.serial.as_deref().and_then(normalise_serial);
    let mut macs: Vec<String> = ids.macs.iter().filter_map(|m| normalise_mac(m)).collect();
    macs.sort();
    macs.dedup();

    let mut collect =
        |key: Key, rule: Rule, value: &str, needs_hostname: bool, out: &mut RuleHits| {
            let holders = index.holders(key, value, agent.agent_id);
            if holders.is_empty() {
                return;
            }
            let own_live: Vec<&&Slot> = holders
                .iter()
                .filter(|s| s.integration_id == agent.integration_id && s.live())
                .collect();
            // Two live Agents of one other integration pointing at different Computers (or none).
            let mut foreign_clone = false;
            let mut by_integration: HashMap<i64, Vec<Option<i64>>> = HashMap::new();
            for s in holders
                .iter()
                .filter(|s| s.integration_id != agent.integration_id && s.live())
            {
                by_integration
                    .entry(s.integration_id)
                    .or_default()
                    .push(s.computer());
            }
            for computers in by_integration.values() {
                if computers.len() > 1
                    && (computers.contains(&None) || computers.windows(2).any(|w| w[0] != w[1]))
                {
                    foreign_clone = true;
                }
            }
            if !own_live.is_empty() || foreign_clone {
                unusable.push(format!("{} {value}", rule.as_str()));
                if key != Key::Mac {
                    for s in &own_live {
                        clone_of.push(s.agent_id);
                        if hostnames_agree(&ids.hostname, index.text(s.hostname)) {
                            clone_same_name.push((s.agent_id, s.computer()));
                        }
                    }
                }
                return;
            }
            for s in holders {
                let Some(computer_id) = s.computer() else {
                    continue;
                };
                let own = s.integration_id == agent.integration_id;
                let reinstall = own && !s.live();
                if !reinstall && (own || agent.allow_duplicates) {
                    continue;
                }
                let hostname = index.text(s.hostname);
                if needs_hostname && !hostnames_agree(&ids.hostname, hostname) {
                    continue;
                }
                out.hits.push(Hit {
                    computer_id,
                    agent_id: s.agent_id,
                    integration_id: s.integration_id,
                    hostname: hostname.to_owned(),
                    tenant: s.tenant(),
                    reinstall,
                    value: value.to_owned(),
                });
            }
        };

    let mut by_uuid = RuleHits::default();
    let mut by_serial = RuleHits::default();
    let mut by_mac = RuleHits::default();
    if let Some(u) = &uuid {
        collect(Key::Uuid, Rule::SmbiosUuid, u, false, &mut by_uuid);
    }
    if let Some(s) = &serial {
        collect(Key::Serial, Rule::Serial, s, true, &mut by_serial);
    }
    for m in &macs {
        collect(Key::Mac, Rule::Mac, m, true, &mut by_mac);
    }
    clone_of.sort_unstable();
    clone_of.dedup();
    clone_same_name.sort_unstable();
    clone_same_name.dedup();
    unusable.sort();
    unusable.dedup();

    let evidence_for = |rule: Rule, hits: &RuleHits, computer: i64| -> Evidence {
        let h = hits.best_for(computer);
        Evidence {
            rule: Some(rule),
            value: h.map(|h| h.value.clone()),
            hostname_a: Some(ids.hostname.clone()),
            hostname_b: h.map(|h| h.hostname.clone()),
            matched_agent_id: h.map(|h| h.agent_id),
            integration_id: h.map(|h| h.integration_id),
            candidate_computer_ids: hits.computers(),
            clone_of: clone_of.clone(),
            unusable: unusable.clone(),
            tenant_mismatch: match (agent.tenant_id, h.and_then(|h| h.tenant)) {
                (Some(a), Some(b)) => a != b,
                _ => false,
            },
            conflicting: None,
        }
    };

    let rules = [
        (Rule::SmbiosUuid, &by_uuid),
        (Rule::Serial, &by_serial),
        (Rule::Mac, &by_mac),
    ];
    if let Some(first) = rules.iter().position(|(_, h)| !h.hits.is_empty()) {
        let (rule, hits) = rules[first];
        let computers = hits.computers();
        if computers.len() > 1 {
            let mut evidence = evidence_for(rule, hits, computers[0]);
            evidence.matched_agent_id = None;
            evidence.integration_id = None;
            evidence.hostname_b = None;
            let list: Vec<String> = computers.iter().map(i64::to_string).collect();
            return Identification::Manual {
                kind: ManualKind::Ambiguous,
                candidate_computer_id: None,
                reason: format!(
                    "The {} {} belongs to {} different computers ({}): pick the right one or keep it separate",
                    rule.label(),
                    hits.hits[0].value,
                    computers.len(),
                    list.join(", ")
                ),
                evidence,
            };
        }
        let computer = computers[0];
        let mut evidence = evidence_for(rule, hits, computer);
        for (later, later_hits) in &rules[first + 1..] {
            let lc = later_hits.computers();
            if !lc.is_empty() && !lc.contains(&computer) {
                evidence.conflicting = Some(Box::new(evidence_for(*later, later_hits, lc[0])));
                return Identification::Manual {
                    kind: ManualKind::Conflict,
                    candidate_computer_id: Some(computer),
                    reason: format!(
                        "The {} points at computer {computer} but the {} points at computer {}",
                        rule.label(),
                        later.label(),
                        lc.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
                    ),
                    evidence,
                };
            }
        }
        let reinstall = hits.best_for(computer).is_some_and(|h| h.reinstall);
        return Identification::Link {
            computer_id: computer,
            rule,
            evidence,
            reinstall,
        };
    }

    let base = Evidence {
        hostname_a: Some(ids.hostname.clone()),
        clone_of: clone_of.clone(),
        unusable: unusable.clone(),
        ..Evidence::default()
    };

    if let Some(&(twin, twin_computer)) = clone_same_name.first() {
        let twin_host = index.get(twin).map(|a| a.ids.hostname).unwrap_or_default();
        return Identification::Manual {
            kind: ManualKind::ReinstallOrClone,
            candidate_computer_id: twin_computer,
            reason: format!(
                "Agent {twin} of the same integration is live with the same hardware ids and the same name {:?}: \
                 a reinstall whose old agent the RMM still lists (same computer), or a copy that was not renamed (keep both)",
                twin_host
            ),
            evidence: Evidence {
                rule: Some(Rule::Manual),
                hostname_b: Some(twin_host),
                matched_agent_id: Some(twin),
                integration_id: Some(agent.integration_id),
                ..base
            },
        };
    }

    if let Some(tenant) = agent.tenant_id
        && hostname_is_usable(&ids.hostname)
    {
        let mut candidates: Vec<&Slot> = index
            .hostname_holders(tenant, &ids.hostname, agent.agent_id)
            .into_iter()
            .filter(|s| {
                let own = s.integration_id == agent.integration_id;
                s.computer().is_some()
                    && ((own && !s.live()) || (!own && !agent.allow_duplicates))
                    && !contradicts(index, s, uuid.as_deref(), serial.as_deref())
            })
            .collect();
        candidates.sort_by_key(|s| (s.computer_id, s.agent_id));
        if let Some(first) = candidates.first() {
            let mut computers: Vec<i64> = candidates.iter().map(|s| s.computer_id).collect();
            computers.dedup();
            let single = (computers.len() == 1).then_some(first.computer_id);
            let reason = match single {
                Some(c) => format!(
                    "Only the hostname {:?} matches computer {c} in this tenant (agent {}); no hardware id confirms it",
                    ids.hostname, first.agent_id
                ),
                None => format!(
                    "Only the hostname {:?} matches, and {} computers in this tenant have it",
                    ids.hostname,
                    computers.len()
                ),
            };
            return Identification::Manual {
                kind: ManualKind::HostnameOnly,
                candidate_computer_id: single,
                reason,
                evidence: Evidence {
                    rule: Some(Rule::Hostname),
                    value: Some(normalise_hostname(&ids.hostname)),
                    hostname_b: Some(index.text(first.hostname).to_owned()),
                    matched_agent_id: Some(first.agent_id),
                    integration_id: Some(first.integration_id),
                    candidate_computer_ids: computers,
                    ..base
                },
            };
        }
    }

    Identification::NewComputer {
        evidence: Evidence {
            rule: Some(Rule::New),
            ..base
        },
        clone_of,
    }
}

/// The other Agents of `agent`'s own integration whose state [`identify`] may consult: holders of
/// its usable UUID, serial or MACs, and (inside its Tenant) of its hostname. A sync identifies a
/// new Agent while pages still stream in only when every one of these has already been reported
/// in the run, because whether they are live (a clone) or missing (a reinstall) is only known
/// then. Sorted, without repeats.
pub fn same_integration_holders(agent: &Incoming, index: &IdentityIndex) -> Vec<i64> {
    let ids = &agent.ids;
    let mut slots: Vec<&Slot> = Vec::new();
    if let Some(u) = ids.uuid.as_deref().and_then(normalise_uuid) {
        slots.extend(index.holders(Key::Uuid, &u, agent.agent_id));
    }
    if let Some(s) = ids.serial.as_deref().and_then(normalise_serial) {
        slots.extend(index.holders(Key::Serial, &s, agent.agent_id));
    }
    for m in ids.macs.iter().filter_map(|m| normalise_mac(m)) {
        slots.extend(index.holders(Key::Mac, &m, agent.agent_id));
    }
    if let Some(tenant) = agent.tenant_id
        && hostname_is_usable(&ids.hostname)
    {
        slots.extend(index.hostname_holders(tenant, &ids.hostname, agent.agent_id));
    }
    let mut out: Vec<i64> = slots
        .into_iter()
        .filter(|s| s.integration_id == agent.integration_id)
        .map(|s| s.agent_id)
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Both Agents report a usable UUID (or serial) and they differ: different hardware, whatever the
/// name says (a replaced laptop that inherited its predecessor's hostname).
fn contradicts(index: &IdentityIndex, s: &Slot, uuid: Option<&str>, serial: Option<&str>) -> bool {
    if let (Some(u), true) = (uuid.and_then(uuid_words), s.has(F_UUID))
        && u != s.uuid
    {
        return true;
    }
    if let (Some(sr), true) = (serial, s.has(F_SERIAL))
        && sr != index.text(s.serial)
    {
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    // ---- normalisers ----------------------------------------------------------------------

    #[test]
    fn junk_serials_are_dropped_and_real_ones_kept() {
        for junk in [
            "To Be Filled By O.E.M.",
            "to be filled by o.e.m.",
            "System Serial Number",
            "SystemSerialNumber",
            "Default string",
            "0",
            "0123456789",
            "123456789",
            "None",
            "N/A",
            "Not Specified",
            "Chassis Serial Number",
            "INVALID",
            "00000000",
            "XXXXXXX",
            "............",
            "  ",
            "",
            "\0\0",
            "Not Applicable",
            "Unknown",
            "AB",
        ] {
            assert_eq!(normalise_serial(junk), None, "{junk:?}");
        }
        assert_eq!(normalise_serial(" 5cd1234xyz "), Some("5CD1234XYZ".into()));
        assert_eq!(
            normalise_serial("C02XK1ABJGH5"),
            Some("C02XK1ABJGH5".into())
        );
        // VMware builds the serial from the VM's UUID: unique, so kept.
        assert_eq!(
            normalise_serial("VMware-56 4d 3a 2b 1c 0d 9e 8f-7a 6b 5c 4d 3e 2f 1a 0b"),
            Some("VMWARE-56 4D 3A 2B 1C 0D 9E 8F-7A 6B 5C 4D 3E 2F 1A 0B".into())
        );
        assert_eq!(
            normalise_serial("VMware-56  4d"),
            Some("VMWARE-56 4D".into()),
            "inner whitespace collapsed"
        );
    }

    /// The sim crate's lists, copied as data (core must not depend on the sim): every value it
    /// generates as junk must be junk here.
    #[test]
    fn everything_the_simulators_send_as_junk_is_junk() {
        for s in [
            "To Be Filled By O.E.M.",
            "System Serial Number",
            "0",
            "0123456789",
            "Default string",
            "None",
            "123456789",
            "SystemSerialNumber",
            "............",
        ] {
            assert_eq!(normalise_serial(s), None, "{s:?}");
        }
        for u in [
            "00000000-0000-0000-0000-000000000000",
            "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF",
            // N-central prints UUIDs in lower case.
            "03000200-0400-0500-0006-000700080009",
            "ffffffff-ffff-ffff-ffff-ffffffffffff",
        ] {
            assert_eq!(normalise_uuid(u), None, "{u:?}");
        }
    }

    #[test]
    fn uuids_are_canonical_and_junk_is_dropped() {
        assert_eq!(
            normalise_uuid("{4C4C4544-0051-3510-8052-B4C04F4B4E32}"),
            Some("4c4c4544-0051-3510-8052-b4c04f4b4e32".into())
        );
        assert_eq!(
            normalise_uuid("4c4c454400513510 8052b4c04f4b4e32"),
            None,
            "spaces are not a UUID format"
        );
        assert_eq!(
            normalise_uuid(
                "4C4C454400513510805 2B4C04F4B4E32"
                    .replace(' ', "")
                    .as_str()
            ),
            Some("4c4c4544-0051-3510-8052-b4c04f4b4e32".into())
        );
        for junk in [
            "00000000-0000-0000-0000-000000000001",
            "00000000-0000-0000-0000-0000000000FF",
            "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF",
            "ffffffff-ffff-ffff-ffff-fffffffffffe",
            "00020003-0004-0005-0006-000700080009",
            "not-a-uuid",
            "",
            "4c4c4544-0051-3510-8052",
        ] {
            assert_eq!(normalise_uuid(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn macs_in_every_rmm_format_are_one_mac() {
        for raw in [
            "3C:52:82:AB:CD:EF",
            "3c:52:82:ab:cd:ef",
            "3c-52-82-ab-cd-ef",
            "3C5282ABCDEF",
            "3c52.82ab.cdef",
            " 3c:52:82:ab:cd:ef ",
        ] {
            assert_eq!(
                normalise_mac(raw).as_deref(),
                Some("3c:52:82:ab:cd:ef"),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn fake_and_virtual_placeholder_macs_are_dropped() {
        for junk in [
            "00:00:00:00:00:00",
            "FF:FF:FF:FF:FF:FF",
            "01:00:5e:00:00:fb",       // multicast
            "33:50:6f:45:30:30",       // WAN Miniport PPPoE: multicast bit
            "02:42:ac:11:00:02",       // Docker: locally administered
            "02:00:4c:4f:4f:50",       // Npcap loopback
            "0a:00:27:00:00:0c",       // VirtualBox host-only
            "da:a1:19:12:34:56",       // randomised Wi-Fi
            "00:05:9a:3c:7a:00",       // Cisco AnyConnect
            "20:41:53:59:4e:ff",       // RAS async
            "50:50:54:50:30:30",       // WAN Miniport PPTP
            "ac:de:48:00:11:22",       // Apple T2 iBridge
            "00:50:56:c0:00:08",       // VMware Workstation VMnet8 on the host
            "00:ff:9a:b3:12:34",       // TAP-Windows
            "00:00:00:00:00:e0",       // tunnel adapter
            "00-00-00-00-00-00-00-E0", // Teredo's 8-byte form
            "3c:52:82:ab:cd",
            "zz:52:82:ab:cd:ef",
            "",
        ] {
            assert_eq!(normalise_mac(junk), None, "{junk:?}");
        }
        // VM NICs are machines' own: kept.
        for vm in [
            "00:15:5d:01:02:03",
            "00:50:56:9a:01:02",
            "08:00:27:12:34:56",
            "00:0c:29:aa:bb:cc",
        ] {
            assert!(normalise_mac(vm).is_some(), "{vm}");
        }
    }

    #[test]
    fn hostnames_from_both_rmms_agree() {
        assert_eq!(normalise_hostname(" ACCT-PC1.corp.local. "), "acct-pc1");
        assert_eq!(normalise_hostname("10.0.0.5"), "10.0.0.5");
        assert!(hostnames_agree("ACME-WS-012", "acme-ws-012.corp.example"));
        assert!(hostnames_agree("acct-pc1", "ACCT-PC1.corp.local"));
        // NetBIOS truncation at 15 characters.
        assert!(hostnames_agree(
            "ACCOUNTING-WORK",
            "accounting-workstation-7.corp"
        ));
        assert!(!hostnames_agree("ACCOUNTING-WOR", "accounting-workstation"));
        assert!(!hostnames_agree("ACME-WS-012", "ACME-WS-013"));
        assert!(!hostnames_agree("", ""));
        assert!(!hostnames_agree("localhost", "localhost.localdomain"));
    }

    #[test]
    fn hardware_ids_from_a_device_are_normalised_sorted_and_deduplicated() {
        let d = RmmDevice {
            external_id: "1".into(),
            client_external_id: "c".into(),
            site_external_id: None,
            hostname: " ACME-WS-001 ".into(),
            serial: Some("To Be Filled By O.E.M.".into()),
            smbios_uuid: Some("6F9619FF-8B86-D011-B42D-00C04FC964FF".into()),
            macs: vec![
                "F0:18:98:00:00:02".into(),
                "3c-52-82-00-00-01".into(),
                "f01898000002".into(),
                "02:42:ac:11:00:02".into(),
            ],
            os: None,
            device_class: None,
            last_contact: None,
            online: None,
        };
        let ids = HardwareIds::from_device(&d);
        assert_eq!(ids.serial, None);
        assert_eq!(
            ids.uuid.as_deref(),
            Some("6f9619ff-8b86-d011-b42d-00c04fc964ff")
        );
        assert_eq!(ids.macs, vec!["3c:52:82:00:00:01", "f0:18:98:00:00:02"]);
        assert_eq!(ids.hostname, "ACME-WS-001");
    }

    // ---- identification ---------------------------------------------------------------------

    const NC: i64 = 1;
    const NINJA: i64 = 2;
    const OTHER: i64 = 3;
    const TENANT: i64 = 100;
    const U1: &str = "6f9619ff-8b86-d011-b42d-00c04fc964ff";
    const U2: &str = "4c4c4544-0051-3510-8052-b4c04f4b4e32";

    fn ids(host: &str, uuid: Option<&str>, serial: Option<&str>, macs: &[&str]) -> HardwareIds {
        HardwareIds::from_raw(host, serial, uuid, macs)
    }

    fn known(
        agent_id: i64,
        integration: i64,
        computer: Option<i64>,
        ids: HardwareIds,
    ) -> KnownAgent {
        KnownAgent {
            agent_id,
            integration_id: integration,
            computer_id: computer,
            tenant_id: Some(TENANT),
            live: true,
            missing: false,
            ids,
        }
    }

    fn missing(mut a: KnownAgent) -> KnownAgent {
        a.live = false;
        a.missing = true;
        a
    }

    fn incoming(agent_id: i64, integration: i64, ids: HardwareIds) -> Incoming {
        Incoming {
            agent_id,
            integration_id: integration,
            tenant_id: Some(TENANT),
            allow_duplicates: false,
            ids,
        }
    }

    fn linked(id: &Identification) -> Option<(i64, Rule, bool)> {
        match id {
            Identification::Link {
                computer_id,
                rule,
                reinstall,
                ..
            } => Some((*computer_id, *rule, *reinstall)),
            _ => None,
        }
    }

    fn manual(id: &Identification) -> Option<(ManualKind, Option<i64>)> {
        match id {
            Identification::Manual {
                kind,
                candidate_computer_id,
                ..
            } => Some((*kind, *candidate_computer_id)),
            _ => None,
        }
    }

    #[test]
    fn same_integration_holders_name_own_agents_sharing_any_id_or_the_hostname() {
        let idx = IdentityIndex::from_agents([
            known(1, NC, Some(500), ids("PC-A", Some(U1), None, &[])),
            known(2, NC, Some(501), ids("PC-B", None, Some("5CD1234XYZ"), &[])),
            known(
                3,
                NC,
                Some(502),
                ids("PC-C", None, None, &["3C:52:82:AB:CD:EF"]),
            ),
            known(4, NC, Some(503), ids("PC-NEW", None, None, &[])),
            // Another integration's holder is not asked about; junk is shared by nobody.
            known(5, NINJA, Some(504), ids("PC-A", Some(U1), Some("0"), &[])),
            known(6, NC, Some(505), ids("PC-Z", None, Some("0"), &[])),
        ]);
        let agent = incoming(
            9,
            NC,
            ids(
                "pc-new",
                Some(U1),
                Some("5cd1234xyz"),
                &["3c-52-82-ab-cd-ef"],
            ),
        );
        assert_eq!(same_integration_holders(&agent, &idx), vec![1, 2, 3, 4]);
        let alone = incoming(10, NC, ids("PC-LONE", None, Some("0"), &[]));
        assert!(same_integration_holders(&alone, &idx).is_empty());
    }

    #[test]
    fn same_uuid_across_integrations_links_and_explains_why() {
        let idx = IdentityIndex::from_agents([known(
            12,
            NC,
            Some(500),
            ids("ACCT-PC1", Some(U1), Some("5CD1234XYZ"), &[]),
        )]);
        let id = identify(
            &incoming(
                90,
                NINJA,
                ids("other-name", Some(&U1.to_uppercase()), None, &[]),
            ),
            &idx,
        );
        assert_eq!(linked(&id), Some((500, Rule::SmbiosUuid, false)));
        let ev = id.evidence();
        assert_eq!(ev.value.as_deref(), Some(U1));
        assert_eq!(ev.matched_agent_id, Some(12));
        assert_eq!(
            ev.explain_with(|i| if i == NC {
                "N-central".into()
            } else {
                "?".into()
            }),
            format!("Same SMBIOS UUID {U1} as agent #12 of N-central")
        );
    }

    #[test]
    fn serial_links_only_when_hostnames_agree() {
        let idx = IdentityIndex::from_agents([known(
            12,
            NC,
            Some(500),
            ids("ACCT-PC1", None, Some("5CD1234XYZ"), &[]),
        )]);
        let id = identify(
            &incoming(
                90,
                NINJA,
                ids("acct-pc1.corp.local", None, Some("5cd1234xyz"), &[]),
            ),
            &idx,
        );
        assert_eq!(linked(&id), Some((500, Rule::Serial, false)));
        let json = serde_json::to_value(id.evidence()).unwrap();
        assert_eq!(json["rule"], "serial");
        assert_eq!(json["value"], "5CD1234XYZ");
        assert_eq!(json["hostname_a"], "acct-pc1.corp.local");
        assert_eq!(json["hostname_b"], "ACCT-PC1");
        assert_eq!(json["matched_agent_id"], 12);
        assert_eq!(json["integration_id"], NC);
        assert!(id.evidence().explain().contains("hostnames"));

        // Same serial, another name: not the serial rule (a re-used motherboard, a typo'd asset tag).
        let id = identify(
            &incoming(91, NINJA, ids("FRONTDESK", None, Some("5CD1234XYZ"), &[])),
            &idx,
        );
        assert!(matches!(id, Identification::NewComputer { .. }), "{id:?}");
    }

    #[test]
    fn mac_links_only_when_hostnames_agree() {
        let idx = IdentityIndex::from_agents([known(
            12,
            NC,
            Some(500),
            ids(
                "ACME-WS-001",
                None,
                None,
                &["3c:52:82:00:00:01", "3c:52:82:00:00:02"],
            ),
        )]);
        let id = identify(
            &incoming(
                90,
                NINJA,
                ids(
                    "acme-ws-001.corp.example",
                    None,
                    None,
                    &["3C-52-82-00-00-02"],
                ),
            ),
            &idx,
        );
        assert_eq!(linked(&id), Some((500, Rule::Mac, false)));
        assert_eq!(id.evidence().value.as_deref(), Some("3c:52:82:00:00:02"));
        let id = identify(
            &incoming(91, NINJA, ids("ACME-LT-044", None, None, &["3c5282000002"])),
            &idx,
        );
        assert!(
            matches!(id, Identification::NewComputer { .. }),
            "a dock moved: {id:?}"
        );
    }

    #[test]
    fn rules_apply_in_order_uuid_before_serial_before_mac() {
        let idx = IdentityIndex::from_agents([known(
            12,
            NC,
            Some(500),
            ids("PC1", Some(U1), Some("SER12345"), &["3c:52:82:00:00:01"]),
        )]);
        let id = identify(
            &incoming(
                90,
                NINJA,
                ids("PC1", Some(U1), Some("SER12345"), &["3c:52:82:00:00:01"]),
            ),
            &idx,
        );
        assert_eq!(linked(&id), Some((500, Rule::SmbiosUuid, false)));
        let id = identify(
            &incoming(
                90,
                NINJA,
                ids("PC1", None, Some("SER12345"), &["3c:52:82:00:00:01"]),
            ),
            &idx,
        );
        assert_eq!(linked(&id), Some((500, Rule::Serial, false)));
    }

    #[test]
    fn junk_ids_never_match() {
        let idx = IdentityIndex::from_agents([known(
            12,
            NC,
            Some(500),
            ids(
                "PC1",
                Some("03000200-0400-0500-0006-000700080009"),
                Some("To Be Filled By O.E.M."),
                &["00:05:9a:3c:7a:00"],
            ),
        )]);
        let id = identify(
            &incoming(
                90,
                NINJA,
                ids(
                    "PC2",
                    Some("03000200-0400-0500-0006-000700080009"),
                    Some("To Be Filled By O.E.M."),
                    &["00:05:9A:3C:7A:00"],
                ),
            ),
            &idx,
        );
        assert!(
            matches!(id, Identification::NewComputer { ref clone_of, .. } if clone_of.is_empty()),
            "{id:?}"
        );
        // Even KnownAgents built by hand with junk are filed without it.
        let mut raw = known(13, NC, Some(501), HardwareIds::default());
        raw.ids.uuid = Some("00000000-0000-0000-0000-000000000000".into());
        raw.ids.serial = Some("0".into());
        let idx = IdentityIndex::from_agents([raw]);
        assert_eq!(idx.get(13).unwrap().ids.uuid, None);
        assert_eq!(idx.get(13).unwrap().ids.serial, None);
    }

    #[test]
    fn clones_in_one_integration_stay_apart_and_are_flagged() {
        // A golden image: same UUID and serial, own name and NICs.
        let idx = IdentityIndex::from_agents([known(
            12,
            NC,
            Some(500),
            ids(
                "ACME-VM-01",
                Some(U1),
                Some("VMware-56 4d"),
                &["00:50:56:00:00:01"],
            ),
        )]);
        let id = identify(
            &incoming(
                13,
                NC,
                ids(
                    "ACME-VM-02",
                    Some(U1),
                    Some("VMware-56 4d"),
                    &["00:50:56:00:00:02"],
                ),
            ),
            &idx,
        );
        match &id {
            Identification::NewComputer { clone_of, evidence } => {
                assert_eq!(clone_of, &vec![12]);
                assert_eq!(evidence.clone_of, vec![12]);
                assert!(
                    evidence.explain().starts_with("Clone"),
                    "{}",
                    evidence.explain()
                );
                assert_eq!(evidence.unusable.len(), 2, "{:?}", evidence.unusable);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn clones_in_another_integration_are_told_apart_by_mac_and_name() {
        // NinjaOne has both copies, N-central one of them.
        let idx = IdentityIndex::from_agents([
            known(
                20,
                NINJA,
                Some(600),
                ids("ACME-VM-01", Some(U1), None, &["00:50:56:00:00:01"]),
            ),
            known(
                21,
                NINJA,
                Some(601),
                ids("ACME-VM-02", Some(U1), None, &["00:50:56:00:00:02"]),
            ),
        ]);
        let id = identify(
            &incoming(
                90,
                NC,
                ids("acme-vm-02", Some(U1), None, &["00:50:56:00:00:02"]),
            ),
            &idx,
        );
        assert_eq!(linked(&id), Some((601, Rule::Mac, false)), "{id:?}");
        assert_eq!(id.evidence().unusable, vec![format!("smbios_uuid {U1}")]);
    }

    #[test]
    fn a_live_twin_with_the_same_name_is_a_manual_reinstall_or_clone() {
        // A reinstall whose old agent the RMM still lists (offline), as the simulators produce.
        let idx = IdentityIndex::from_agents([known(
            12,
            NC,
            Some(500),
            ids(
                "ACME-WS-007",
                Some(U1),
                Some("5CD1234XYZ"),
                &["3c:52:82:00:00:01"],
            ),
        )]);
        let id = identify(
            &incoming(
                13,
                NC,
                ids(
                    "ACME-WS-007",
                    Some(U1),
                    Some("5CD1234XYZ"),
                    &["3c:52:82:00:00:01"],
                ),
            ),
            &idx,
        );
        assert_eq!(
            manual(&id),
            Some((ManualKind::ReinstallOrClone, Some(500))),
            "{id:?}"
        );
    }

    #[test]
    fn a_reinstall_links_to_the_missing_agents_computer() {
        let idx = IdentityIndex::from_agents([missing(known(
            12,
            NC,
            Some(500),
            ids("ACME-WS-007", Some(U1), Some("5CD1234XYZ"), &[]),
        ))]);
        let id = identify(
            &incoming(13, NC, ids("ACME-WS-007", Some(U1), None, &[])),
            &idx,
        );
        assert_eq!(linked(&id), Some((500, Rule::SmbiosUuid, true)));
        // By serial, the name must agree.
        let id = identify(
            &incoming(13, NC, ids("acme-ws-007", None, Some("5CD1234XYZ"), &[])),
            &idx,
        );
        assert_eq!(linked(&id), Some((500, Rule::Serial, true)));
        // Reinstalls apply with "allow duplicates" too: it is the integration's own agent.
        let mut inc = incoming(13, NC, ids("ACME-WS-007", Some(U1), None, &[]));
        inc.allow_duplicates = true;
        assert_eq!(
            linked(&identify(&inc, &idx)),
            Some((500, Rule::SmbiosUuid, true))
        );
        // A retired agent keeps its identity for rediscovery as well.
        let mut retired = missing(known(14, OTHER, Some(700), ids("X", Some(U2), None, &[])));
        retired.missing = false;
        let idx = IdentityIndex::from_agents([retired]);
        let id = identify(&incoming(15, OTHER, ids("X", Some(U2), None, &[])), &idx);
        assert_eq!(linked(&id), Some((700, Rule::SmbiosUuid, true)));
    }

    #[test]
    fn allow_duplicates_skips_other_integrations() {
        let idx = IdentityIndex::from_agents([known(
            12,
            NC,
            Some(500),
            ids("PC1", Some(U1), Some("SER12345"), &[]),
        )]);
        let mut inc = incoming(90, NINJA, ids("PC1", Some(U1), Some("SER12345"), &[]));
        inc.allow_duplicates = true;
        let id = identify(&inc, &idx);
        assert!(
            matches!(id, Identification::NewComputer { ref clone_of, .. } if clone_of.is_empty()),
            "{id:?}"
        );
    }

    #[test]
    fn unidentified_agents_cannot_be_linked_to() {
        let idx =
            IdentityIndex::from_agents([known(12, NC, None, ids("PC1", Some(U1), None, &[]))]);
        let id = identify(&incoming(90, NINJA, ids("PC1", Some(U1), None, &[])), &idx);
        assert!(matches!(id, Identification::NewComputer { .. }), "{id:?}");
    }

    #[test]
    fn one_rule_pointing_at_two_computers_is_ambiguous() {
        let idx = IdentityIndex::from_agents([
            known(12, NC, Some(500), ids("PC1", Some(U1), None, &[])),
            known(20, OTHER, Some(501), ids("PC1", Some(U1), None, &[])),
        ]);
        let id = identify(&incoming(90, NINJA, ids("PC1", Some(U1), None, &[])), &idx);
        assert_eq!(manual(&id), Some((ManualKind::Ambiguous, None)), "{id:?}");
        assert_eq!(id.evidence().candidate_computer_ids, vec![500, 501]);
    }

    #[test]
    fn uuid_and_serial_disagreeing_is_a_conflict() {
        let idx = IdentityIndex::from_agents([
            known(12, NC, Some(500), ids("PC1", Some(U1), None, &[])),
            known(
                20,
                NC,
                Some(501),
                ids("PC1", Some(U2), Some("SER12345"), &[]),
            ),
        ]);
        let id = identify(
            &incoming(90, NINJA, ids("PC1", Some(U1), Some("SER12345"), &[])),
            &idx,
        );
        assert_eq!(
            manual(&id),
            Some((ManualKind::Conflict, Some(500))),
            "{id:?}"
        );
        let ev = id.evidence();
        let other = ev.conflicting.as_ref().unwrap();
        assert_eq!(other.rule, Some(Rule::Serial));
        assert_eq!(other.matched_agent_id, Some(20));
        assert!(
            ev.explain().contains("but same serial number SER12345"),
            "{}",
            ev.explain()
        );
    }

    #[test]
    fn hostname_alone_is_only_ever_a_manual_decision_inside_the_tenant() {
        let idx = IdentityIndex::from_agents([known(
            12,
            NC,
            Some(500),
            ids("FRONTDESK", None, None, &[]),
        )]);
        let id = identify(
            &incoming(90, NINJA, ids("frontdesk.corp.example", None, None, &[])),
            &idx,
        );
        assert_eq!(
            manual(&id),
            Some((ManualKind::HostnameOnly, Some(500))),
            "{id:?}"
        );
        assert_eq!(id.evidence().rule, Some(Rule::Hostname));
        // Another tenant's FRONTDESK is no candidate.
        let mut elsewhere = incoming(91, NINJA, ids("FRONTDESK", None, None, &[]));
        elsewhere.tenant_id = Some(TENANT + 1);
        assert!(matches!(
            identify(&elsewhere, &idx),
            Identification::NewComputer { .. }
        ));
        // Different real UUIDs on both sides: a replacement machine that inherited the name.
        let idx = IdentityIndex::from_agents([known(
            12,
            NC,
            Some(500),
            ids("FRONTDESK", Some(U1), None, &[]),
        )]);
        let id = identify(
            &incoming(90, NINJA, ids("FRONTDESK", Some(U2), None, &[])),
            &idx,
        );
        assert!(matches!(id, Identification::NewComputer { .. }), "{id:?}");
        // A live agent of the same integration with the same name is just another device.
        let idx = IdentityIndex::from_agents([known(
            12,
            NC,
            Some(500),
            ids("core-sw-01", None, None, &[]),
        )]);
        let id = identify(&incoming(13, NC, ids("core-sw-01", None, None, &[])), &idx);
        assert!(matches!(id, Identification::NewComputer { .. }), "{id:?}");
    }

    #[test]
    fn the_agent_itself_in_the_index_is_not_its_own_candidate() {
        let idx = IdentityIndex::from_agents([known(
            90,
            NINJA,
            Some(500),
            ids("PC1", Some(U1), None, &[]),
        )]);
        let id = identify(&incoming(90, NINJA, ids("PC1", Some(U1), None, &[])), &idx);
        assert!(
            matches!(id, Identification::NewComputer { ref clone_of, .. } if clone_of.is_empty()),
            "{id:?}"
        );
    }

    #[test]
    fn index_updates_and_removals_take_effect() {
        let mut idx =
            IdentityIndex::from_agents([known(12, NC, None, ids("PC1", Some(U1), None, &[]))]);
        let inc = incoming(90, NINJA, ids("PC1", Some(U1), None, &[]));
        assert!(matches!(
            identify(&inc, &idx),
            Identification::NewComputer { .. }
        ));
        assert!(idx.update_computer(12, Some(500)));
        assert_eq!(
            linked(&identify(&inc, &idx)),
            Some((500, Rule::SmbiosUuid, false))
        );
        assert!(idx.update_ids(12, Some(TENANT), ids("PC1", Some(U2), None, &[])));
        // The name alone would match, but the two real UUIDs say these are different machines.
        assert!(matches!(
            identify(&inc, &idx),
            Identification::NewComputer { .. }
        ));
        assert!(idx.remove(12));
        assert!(!idx.remove(12));
        assert!(idx.is_empty());
        assert!(matches!(
            identify(&inc, &idx),
            Identification::NewComputer { .. }
        ));
        // State changes: a live twin (clone) that goes missing makes the next one a reinstall.
        let mut idx =
            IdentityIndex::from_agents([known(12, NC, Some(500), ids("A", Some(U1), None, &[]))]);
        let twin = incoming(13, NC, ids("B", Some(U1), None, &[]));
        assert!(
            matches!(identify(&twin, &idx), Identification::NewComputer { ref clone_of, .. } if clone_of == &vec![12])
        );
        assert!(idx.update_state(12, false, true));
        assert_eq!(
            linked(&identify(&twin, &idx)),
            Some((500, Rule::SmbiosUuid, true))
        );
        assert!(!idx.update_state(999, true, false));
    }

    #[test]
    fn the_index_round_trips_agents() {
        let a = known(
            12,
            NC,
            Some(500),
            ids(
                "ACME-WS-001",
                Some(U1),
                Some("SER12345"),
                &["3c:52:82:00:00:01"],
            ),
        );
        let idx = IdentityIndex::from_agents([a.clone()]);
        assert_eq!(idx.get(12), Some(a));
        assert_eq!(idx.get(13), None);
    }

    /// SplitMix64, so the property test needs no extra dependency.
    fn mix(x: u64) -> u64 {
        let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A small world full of collisions: few UUIDs, serials, MACs and names shared at random.
    fn world(seed: u64, n: i64) -> Vec<KnownAgent> {
        let uuids = [U1, U2, "11111111-2222-4333-8444-555555555555"];
        let serials = ["SER00001", "SER00002", "SER00003", "To Be Filled By O.E.M."];
        let hosts = ["PC1", "pc1.corp", "PC2", "PC3"];
        (0..n)
            .map(|i| {
                let r = mix(seed ^ (i as u64) << 8);
                let pick = |shift: u32, len: usize| ((r >> shift) % len as u64) as usize;
                let uuid = (r & 1 == 0).then(|| uuids[pick(1, 3)]);
                let serial = (r & 2 == 0).then(|| serials[pick(5, 4)]);
                let mac = format!("3c:52:82:00:00:0{}", pick(9, 4));
                let mut a = known(
                    i + 1,
                    1 + (r >> 12) as i64 % 3,
                    (!(r >> 14).is_multiple_of(5)).then_some(500 + (r >> 17) as i64 % 4),
                    ids(hosts[pick(20, 4)], uuid, serial, &[mac.as_str()]),
                );
                match (r >> 24) % 4 {
                    0 => a = missing(a),
                    1 => {
                        a.live = false;
                    }
                    _ => {}
                }
                a
            })
            .collect()
    }

    #[test]
    fn identification_does_not_depend_on_insertion_order() {
        for seed in 0..40u64 {
            let agents = world(seed, 14);
            let forward = IdentityIndex::from_agents(agents.clone());
            let backward = IdentityIndex::from_agents(agents.iter().rev().cloned());
            let mut shuffled = agents.clone();
            for i in (1..shuffled.len()).rev() {
                let j = (mix(seed * 31 + i as u64) % (i as u64 + 1)) as usize;
                shuffled.swap(i, j);
            }
            // Churn the third index: insert extra agents and remove them again.
            let mut churned = IdentityIndex::from_agents(shuffled);
            for extra in world(seed + 1000, 6) {
                let mut e = extra;
                e.agent_id += 10_000;
                churned.insert(e);
            }
            for id in 10_001..=10_006 {
                churned.remove(id);
            }
            for probe in world(seed + 7, 10) {
                for allow in [false, true] {
                    let inc = Incoming {
                        agent_id: probe.agent_id + 100,
                        integration_id: probe.integration_id,
                        tenant_id: probe.tenant_id,
                        allow_duplicates: allow,
                        ids: probe.ids.clone(),
                    };
                    let a = identify(&inc, &forward);
                    assert_eq!(a, identify(&inc, &backward), "seed {seed} {inc:?}");
                    assert_eq!(a, identify(&inc, &churned), "seed {seed} {inc:?}");
                }
            }
        }
    }

    #[test]
    fn two_hundred_thousand_agents_fit_in_well_under_100_mb() {
        let mut idx = IdentityIndex::new();
        for i in 0..200_000u64 {
            let r = mix(i);
            let uuid = format!("{:032x}", (u128::from(r) << 64) | u128::from(mix(r)));
            let serial = format!("{:010X}", mix(r ^ 1) % 10_000_000_000);
            let macs = [
                format!(
                    "3c:52:82:{:02x}:{:02x}:{:02x}",
                    (r >> 8) as u8,
                    (r >> 16) as u8,
                    i as u8
                ),
                format!(
                    "f0:18:98:{:02x}:{:02x}:{:02x}",
                    (r >> 24) as u8,
                    (r >> 32) as u8,
                    (i >> 8) as u8
                ),
            ];
            idx.insert(KnownAgent {
                agent_id: i as i64,
                integration_id: (i % 2) as i64,
                computer_id: Some(i as i64),
                tenant_id: Some((i % 5000) as i64),
                live: true,
                missing: false,
                ids: HardwareIds::from_raw(
                    &format!("ACME-WS-{i:06}"),
                    Some(&serial),
                    Some(&uuid),
                    &macs,
                ),
            });
        }
        let bytes = idx.approx_heap_bytes();
        let per_agent = bytes / 200_000;
        // Measured: 56,216,320 bytes, 281 per agent (growth slack of Vec and maps included).
        assert!(
            bytes < 80 * 1024 * 1024,
            "{bytes} bytes, {per_agent} per agent"
        );
        assert_eq!(std::mem::size_of::<Slot>(), 72);
        assert_eq!(idx.len(), 200_000);
    }
}
