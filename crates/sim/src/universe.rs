//! The seeded MSP data generator: pure functions from `(seed, index)` to companies and machines.
//!
//! Nothing here is stored: a machine is recomputed from its universe index whenever a page is
//! served, so 100,000 devices cost a few bytes each (see `fleet.rs`). Two simulators started
//! with the same seed share one universe: machine `u` has the same hardware ids in both, each
//! formatted the way that RMM formats them.

/// SplitMix64 over (seed, stream, index): a fast, portable, stateless source of randomness.
pub fn mix(seed: u64, stream: u64, index: u64) -> u64 {
    let mut z = seed
        .wrapping_add(stream.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(index.wrapping_mul(0xD1B5_4A32_D192_ED03))
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform draw in `[0, 1)`.
pub fn unit(seed: u64, stream: u64, index: u64) -> f64 {
    (mix(seed, stream, index) >> 11) as f64 / (1u64 << 53) as f64
}

fn pick<'a>(list: &[&'a str], seed: u64, stream: u64, index: u64) -> &'a str {
    list[(mix(seed, stream, index) % list.len() as u64) as usize]
}

// Streams: one per independent decision, so adding a field never reshuffles the others.
const S_NAME_A: u64 = 1;
const S_SUFFIX: u64 = 3;
const S_VARIANT: u64 = 4;
const S_COMPANY_OF: u64 = 5;
const S_CLASS: u64 = 6;
const S_SERIAL: u64 = 7;
const S_UUID: u64 = 8;
const S_MAC: u64 = 9;
const S_HOST: u64 = 10;
const S_CONTACT: u64 = 11;
const S_CREATED: u64 = 12;
const S_SITES: u64 = 13;
const S_SITE_OF: u64 = 14;
const S_OS: u64 = 15;
const S_JUNK: u64 = 16;
const S_USER: u64 = 17;

const NAME_A: &[&str] = &[
    "Acme",
    "Bright Harbor",
    "Northwind",
    "Contoso",
    "Fabrikam",
    "Blue Ridge",
    "Summit",
    "Evergreen",
    "Riverside",
    "Oakwood",
    "Pinnacle",
    "Silverline",
    "Redwood",
    "Lakeshore",
    "Ironbridge",
    "Golden Gate",
    "Maple Leaf",
    "Harborview",
    "Crescent",
    "Cedar Creek",
    "Keystone",
    "Atlas",
    "Beacon",
    "Cobalt",
    "Granite",
    "Horizon",
    "Juniper",
    "Meridian",
    "Nova",
    "Orchard",
    "Prairie",
    "Quarry",
    "Sterling",
    "Trident",
    "Union Square",
    "Vantage",
    "Willow",
    "Zenith",
    "Müller",
    "Zürich",
    "Société",
    "Café Lumière",
    "Björk",
    "São Paulo",
    "Østergaard",
    "Smith",
    "Johnson",
    "O'Brien",
    "Van der Berg",
    "St. Mary's",
];
const NAME_B: &[&str] = &[
    "Dental",
    "Law Group",
    "Accounting",
    "Logistics",
    "Manufacturing",
    "Medical Center",
    "Realty",
    "Construction",
    "Engineering",
    "Architects",
    "Insurance",
    "Veterinary Clinic",
    "Foods",
    "Hotels",
    "Consulting",
    "Partners",
    "Holdings",
    "Pharmacy",
    "Schools",
    "Credit Union",
    "Brewing",
    "Motors",
    "Design",
    "Capital",
    "Freight",
    "Labs",
    "Clinic",
    "Bakery",
    "Printing",
    "Plumbing & Heating",
];
const SUFFIXES: &[&str] = &[
    "Inc",
    "Inc.",
    "LLC",
    "Ltd",
    "Ltd.",
    "GmbH",
    "Corp",
    "Corporation",
    "Co.",
    "PLC",
    "S.A.",
    "B.V.",
    "AG",
    "Pty Ltd",
    "",
    "",
    "",
    "",
];

/// The company's name as it was meant: both RMMs start from this.
pub fn company_name(seed: u64, k: u64) -> String {
    // Every 13th company is a near-duplicate of its predecessor ("Acme Dental" / "Acme Dental Group").
    if k % 13 == 7 {
        let base = company_name(seed, k - 1);
        return match mix(seed, S_VARIANT, k) % 3 {
            0 => format!("{base} Group"),
            1 if base.contains(" Inc") => base.replacen(" Inc", " Industries", 1),
            1 => format!("{base} Holdings"),
            _ => format!("{base} (Old)"),
        };
    }
    // A bijection over all (first, second) word pairs keeps names unique until they run out.
    let pairs = (NAME_A.len() * NAME_B.len()) as u64;
    let slot = (k % pairs)
        .wrapping_mul(769)
        .wrapping_add(mix(seed, S_NAME_A, 0))
        % pairs;
    let a = NAME_A[(slot % NAME_A.len() as u64) as usize];
    let b = NAME_B[(slot / NAME_A.len() as u64) as usize];
    let suffix = pick(SUFFIXES, seed, S_SUFFIX, k);
    let mut name = format!("{a} {b}");
    if !suffix.is_empty() {
        name = if mix(seed, S_SUFFIX, k + 1_000_000).is_multiple_of(3) {
            format!("{name}, {suffix}")
        } else {
            format!("{name} {suffix}")
        };
    }
    // Company names are unique in the universe: a repeat draw gets a branch number.
    if k >= pairs {
        name = format!("{name} {}", k / pairs + 1);
    }
    name
}

/// The same company as one RMM's technicians typed it: mostly identical, sometimes not.
pub fn company_name_in(seed: u64, k: u64, side: Side) -> String {
    let name = company_name(seed, k);
    let r = mix(seed, S_VARIANT + side.stream(), k) % 20;
    match r {
        0 => name.to_uppercase(),
        1 => name.to_lowercase(),
        2 => name.replace('&', "and"),
        3 => format!(" {name} "),
        4 => name.replace(", ", " "),
        5 => strip_accents(&name),
        6 => name.replace("  ", " ").replace(' ', "  "),
        7 => name.trim_end_matches('.').to_owned(),
        _ => name,
    }
}

fn strip_accents(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'ü' => 'u',
            'ö' | 'ø' | 'Ø' => 'o',
            'é' | 'è' => 'e',
            'ã' | 'á' => 'a',
            other => other,
        })
        .collect::<String>()
        .replace('Ø', "O")
}

/// Which RMM a simulator plays; both sides draw from the same universe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    Ncentral,
    Ninjaone,
}

impl Side {
    fn stream(self) -> u64 {
        match self {
            Side::Ncentral => 100,
            Side::Ninjaone => 200,
        }
    }

    /// Universe indices of machines only this side has start here; below `1 << 40` is shared ground.
    pub fn private_base(self) -> u64 {
        match self {
            Side::Ncentral => 1 << 40,
            Side::Ninjaone => 2 << 40,
        }
    }
}

/// How many sites (N-central) or locations (NinjaOne) a company has: some none, most few, some many.
pub fn site_count(seed: u64, k: u64, side: Side) -> u32 {
    let r = mix(seed, S_SITES + side.stream(), k) % 100;
    let n = match r {
        0..=39 => 0,
        40..=74 => 1,
        75..=94 => 2 + (r % 3) as u32,
        _ => 8 + (r % 5) as u32,
    };
    // NinjaOne places every device in a location, so every organization has at least one.
    if side == Side::Ninjaone { n.max(1) } else { n }
}

pub fn site_name(seed: u64, k: u64, i: u32) -> String {
    const PLACES: &[&str] = &[
        "Main Office",
        "Headquarters",
        "Warehouse",
        "Downtown",
        "North Branch",
        "South Branch",
        "Remote Workers",
        "Datacenter",
        "Lab",
        "Clinic 2",
        "Store 14",
        "Plant",
    ];
    let place = PLACES[((mix(seed, S_SITES, k) + u64::from(i)) % PLACES.len() as u64) as usize];
    if i as usize >= PLACES.len() {
        format!("{place} {i}")
    } else {
        place.to_owned()
    }
}

/// The company a universe machine belongs to: skewed, so a few companies are big and some have nothing.
pub fn company_of(seed: u64, u: u64, companies: u64) -> u64 {
    let r = unit(seed, S_COMPANY_OF, u);
    ((r * r * companies as f64) as u64).min(companies.saturating_sub(1))
}

pub fn site_of(seed: u64, u: u64, sites: u32) -> Option<u32> {
    (sites > 0).then(|| (mix(seed, S_SITE_OF, u) % u64::from(sites)) as u32)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceClass {
    WindowsWorkstation,
    WindowsServer,
    WindowsVm,
    Mac,
    LinuxServer,
    LinuxWorkstation,
    NetworkSwitch,
    NetworkPrinter,
}

impl DeviceClass {
    pub fn is_network(self) -> bool {
        matches!(
            self,
            DeviceClass::NetworkSwitch | DeviceClass::NetworkPrinter
        )
    }

    pub fn is_server(self) -> bool {
        matches!(
            self,
            DeviceClass::WindowsServer | DeviceClass::WindowsVm | DeviceClass::LinuxServer
        )
    }
}

/// A physical (or virtual) machine: the truth both RMMs report on, each in its own words.
#[derive(Clone, Debug, PartialEq)]
pub struct Machine {
    pub class: DeviceClass,
    pub hostname: String,
    pub manufacturer: &'static str,
    pub model: &'static str,
    /// `None`: the machine reports no serial at all.
    pub serial: Option<String>,
    /// Canonical upper-case 8-4-4-4-12; `None` where the RMM cannot read it.
    pub smbios_uuid: Option<String>,
    pub macs: Vec<[u8; 6]>,
    pub os_name: std::borrow::Cow<'static, str>,
    pub os_version: &'static str,
    pub last_user: String,
    /// Seconds before the generation epoch at which the agent was installed.
    pub created_ago_s: i64,
    /// Seconds before the generation epoch of the last contact; large means offline.
    pub last_contact_ago_s: i64,
}

pub const JUNK_SERIALS: &[&str] = &[
    "To Be Filled By O.E.M.",
    "System Serial Number",
    "0",
    "0123456789",
    "Default string",
    "None",
    "123456789",
    "SystemSerialNumber",
    "............",
];
pub const JUNK_UUIDS: &[&str] = &[
    "00000000-0000-0000-0000-000000000000",
    "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF",
    "03000200-0400-0500-0006-000700080009",
];

const ALNUM: &[u8] = b"0123456789ABCDEFGHJKLMNPQRSTUVWXYZ";

fn code(seed: u64, stream: u64, u: u64, len: usize) -> String {
    let mut x = mix(seed, stream, u);
    let mut out = String::with_capacity(len);
    for i in 0..len {
        if i > 0 && i % 10 == 0 {
            x = mix(x, stream, i as u64);
        }
        out.push(ALNUM[(x % ALNUM.len() as u64) as usize] as char);
        x /= ALNUM.len() as u64;
    }
    out
}

/// The machine with universe index `u`. `companies` is the company count of the universe.
pub fn machine(seed: u64, u: u64, companies: u64) -> Machine {
    let class = match mix(seed, S_CLASS, u) % 100 {
        0..=54 => DeviceClass::WindowsWorkstation,
        55..=64 => DeviceClass::WindowsServer,
        65..=72 => DeviceClass::WindowsVm,
        73..=84 => DeviceClass::Mac,
        85..=90 => DeviceClass::LinuxServer,
        91..=92 => DeviceClass::LinuxWorkstation,
        93..=96 => DeviceClass::NetworkSwitch,
        _ => DeviceClass::NetworkPrinter,
    };
    let k = company_of(seed, u, companies);
    let prefix: String = company_name(seed, k)
        .chars()
        .filter(|c| c.is_ascii_alphabetic())
        .take(4)
        .collect::<String>()
        .to_uppercase();
    let n = mix(seed, S_HOST, u) % 400;
    let hostname = match class {
        DeviceClass::WindowsWorkstation if n.is_multiple_of(5) => {
            format!("DESKTOP-{}", code(seed, S_HOST, u, 7))
        }
        DeviceClass::WindowsWorkstation if n % 5 == 1 => format!("{prefix}-LT-{n:03}"),
        DeviceClass::WindowsWorkstation => format!("{prefix}-WS-{n:03}"),
        DeviceClass::WindowsServer => format!("{prefix}-SRV-{:02}", n % 40),
        DeviceClass::WindowsVm => format!("{prefix}-VM-{:02}", n % 60),
        DeviceClass::Mac => format!("{}s-MacBook-Pro", pick(FIRST_NAMES, seed, S_USER, u)),
        DeviceClass::LinuxServer => format!(
            "{}{:02}",
            pick(&["web", "db", "app", "files", "backup"], seed, S_HOST, u),
            n % 20
        ),
        DeviceClass::LinuxWorkstation => {
            format!("ubuntu-{}", code(seed, S_HOST, u, 4).to_lowercase())
        }
        DeviceClass::NetworkSwitch => format!("core-sw-{:02}", n % 8),
        DeviceClass::NetworkPrinter => format!("PRN-{prefix}-{:02}", n % 12),
    };
    let (manufacturer, model, serial_len) = match class {
        DeviceClass::WindowsWorkstation => match n % 3 {
            0 => ("Dell Inc.", "Latitude 5440", 7),
            1 => ("HP", "EliteBook 840 G9", 10),
            _ => ("LENOVO", "ThinkPad T14 Gen 3", 8),
        },
        DeviceClass::WindowsServer => ("Dell Inc.", "PowerEdge R650", 7),
        DeviceClass::WindowsVm => ("VMware, Inc.", "VMware7,1", 0),
        DeviceClass::Mac => ("Apple Inc.", "MacBookPro18,3", 12),
        DeviceClass::LinuxServer => ("Supermicro", "SYS-1029P", 12),
        DeviceClass::LinuxWorkstation => ("LENOVO", "ThinkCentre M70q", 8),
        DeviceClass::NetworkSwitch => ("Cisco", "Catalyst 9200", 11),
        DeviceClass::NetworkPrinter => ("Brother", "HL-L6400DW", 15),
    };
    let junk = mix(seed, S_JUNK, u) % 100;
    let serial = if class.is_network() && junk < 50 {
        None
    } else if junk < 3 {
        Some(pick(JUNK_SERIALS, seed, S_SERIAL, u).to_owned())
    } else if junk < 5 {
        None
    } else if serial_len == 0 {
        // VMware builds the serial from the VM's UUID.
        let hex = format!(
            "{:032x}",
            u128::from(mix(seed, S_UUID, u)) << 64 | u128::from(mix(seed, S_UUID + 1, u))
        );
        let pairs: Vec<String> = hex
            .as_bytes()
            .chunks(2)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        Some(format!(
            "VMware-{}-{}",
            pairs[..8].join(" "),
            pairs[8..].join(" ")
        ))
    } else {
        Some(code(seed, S_SERIAL, u, serial_len))
    };
    let smbios_uuid = if class.is_network() {
        None
    } else if (5..8).contains(&junk) {
        Some(pick(JUNK_UUIDS, seed, S_UUID, u).to_owned())
    } else {
        let a = mix(seed, S_UUID, u);
        let b = mix(seed, S_UUID + 1, u);
        Some(format!(
            "{:08X}-{:04X}-{:04X}-{:04X}-{:012X}",
            a >> 32,
            (a >> 16) & 0xFFFF,
            (a & 0x0FFF) | 0x4000,
            ((b >> 48) & 0x3FFF) | 0x8000,
            b & 0xFFFF_FFFF_FFFF
        ))
    };
    let mac_count = 1 + (mix(seed, S_MAC, u) % 3) as usize;
    let macs = (0..mac_count)
        .map(|i| {
            let x = mix(seed, S_MAC + 1, u * 4 + i as u64);
            let oui: [u8; 3] = match class {
                DeviceClass::WindowsVm => [0x00, 0x50, 0x56],
                DeviceClass::Mac => [0xF0, 0x18, 0x98],
                _ => [0x3C, 0x52, 0x82],
            };
            [
                oui[0],
                oui[1],
                oui[2],
                (x >> 16) as u8,
                (x >> 8) as u8,
                x as u8,
            ]
        })
        .collect();
    let (os_name, os_version) = match class {
        DeviceClass::WindowsWorkstation => match mix(seed, S_OS, u) % 4 {
            0 => ("Microsoft Windows 10 Pro", "10.0.19045"),
            _ => ("Microsoft Windows 11 Pro", "10.0.22631"),
        },
        DeviceClass::WindowsServer | DeviceClass::WindowsVm => match mix(seed, S_OS, u) % 3 {
            0 => ("Microsoft Windows Server 2019 Standard", "10.0.17763"),
            _ => ("Microsoft Windows Server 2022 Standard", "10.0.20348"),
        },
        DeviceClass::Mac => ("macOS Sonoma", "14.6.1"),
        DeviceClass::LinuxServer => ("Ubuntu 22.04.4 LTS", "22.04"),
        DeviceClass::LinuxWorkstation => ("Ubuntu 24.04 LTS", "24.04"),
        DeviceClass::NetworkSwitch => ("Cisco IOS XE", "17.9.4"),
        DeviceClass::NetworkPrinter => ("Brother Firmware", "1.42"),
    };
    let created_ago_s = 86_400 * (30 + (mix(seed, S_CREATED, u) % 1500) as i64);
    let c = mix(seed, S_CONTACT, u) % 100;
    let last_contact_ago_s = match c {
        // About one in eight is offline: days to months since it was last seen.
        0..=11 => 86_400 * (2 + (c as i64 * 7) % 120),
        _ => (mix(seed, S_CONTACT + 1, u) % 900) as i64,
    };
    Machine {
        class,
        hostname,
        manufacturer,
        model,
        serial,
        smbios_uuid,
        macs,
        os_name: os_name.into(),
        os_version,
        last_user: format!(
            "{}\\{}",
            prefix,
            pick(FIRST_NAMES, seed, S_USER, u).to_lowercase()
        ),
        created_ago_s,
        last_contact_ago_s,
    }
}

const FIRST_NAMES: &[&str] = &[
    "Anna", "Ben", "Chloe", "David", "Emma", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kara",
    "Liam", "Mia", "Noah", "Olga", "Priya", "Quinn", "Rosa", "Sam", "Tomas",
];

/// A MAC address as each RMM prints it.
pub fn format_mac(mac: &[u8; 6], side: Side) -> String {
    let parts: Vec<String> = mac
        .iter()
        .map(|b| match side {
            Side::Ncentral => format!("{b:02x}"),
            Side::Ninjaone => format!("{b:02X}"),
        })
        .collect();
    parts.join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_data_and_another_seed_does_not() {
        assert_eq!(machine(7, 42, 50), machine(7, 42, 50));
        assert_eq!(company_name(7, 3), company_name(7, 3));
        let differs = (0..20)
            .filter(|&u| machine(7, u, 50) != machine(8, u, 50))
            .count();
        assert!(differs >= 19, "{differs}");
    }

    #[test]
    fn names_have_real_variety() {
        let names: Vec<String> = (0..300).map(|k| company_name(1, k)).collect();
        let mut unique = std::collections::HashSet::new();
        for n in &names {
            assert!(unique.insert(n), "{n:?} twice");
        }
        assert_eq!(unique.len(), names.len(), "company names are unique");
        assert!(names.iter().any(|n| n.contains("GmbH")));
        assert!(names.iter().any(|n| n.contains('&')));
        assert!(names.iter().any(|n| n.contains(", ")));
        assert!(names.iter().any(|n| !n.is_ascii()), "accents");
        assert!(
            names.iter().any(|n| n.ends_with(" Group")),
            "near-duplicates"
        );
        let nc: Vec<String> = (0..300)
            .map(|k| company_name_in(1, k, Side::Ncentral))
            .collect();
        let same = nc.iter().zip(&names).filter(|(a, b)| a == b).count();
        assert!(
            (180..290).contains(&same),
            "most names agree across RMMs, some differ: {same}"
        );
    }

    #[test]
    fn machines_cover_the_classes_and_the_awkward_cases() {
        let ms: Vec<Machine> = (0..5000).map(|u| machine(3, u, 200)).collect();
        for class in [
            DeviceClass::WindowsWorkstation,
            DeviceClass::Mac,
            DeviceClass::LinuxServer,
            DeviceClass::NetworkSwitch,
            DeviceClass::WindowsVm,
        ] {
            assert!(ms.iter().any(|m| m.class == class), "{class:?}");
        }
        let junk = ms
            .iter()
            .filter(|m| {
                m.serial
                    .as_deref()
                    .is_some_and(|s| JUNK_SERIALS.contains(&s))
            })
            .count();
        let none = ms.iter().filter(|m| m.serial.is_none()).count();
        let junk_uuid = ms
            .iter()
            .filter(|m| {
                m.smbios_uuid
                    .as_deref()
                    .is_some_and(|s| JUNK_UUIDS.contains(&s))
            })
            .count();
        let offline = ms.iter().filter(|m| m.last_contact_ago_s > 86_400).count();
        assert!((100..200).contains(&junk), "{junk}");
        assert!(none > 50, "{none}");
        assert!(junk_uuid > 100, "{junk_uuid}");
        assert!((400..800).contains(&offline), "{offline}");
        let real: std::collections::HashSet<_> = ms
            .iter()
            .filter_map(|m| m.serial.clone())
            .filter(|s| !JUNK_SERIALS.contains(&s.as_str()))
            .collect();
        let with_real = ms
            .iter()
            .filter(|m| {
                m.serial
                    .as_deref()
                    .is_some_and(|s| !JUNK_SERIALS.contains(&s))
            })
            .count();
        assert_eq!(
            real.len(),
            with_real,
            "real serials are unique across the universe"
        );
    }

    #[test]
    fn companies_are_skewed_some_big_some_empty() {
        let mut counts = vec![0u32; 100];
        for u in 0..10_000 {
            counts[company_of(5, u, 100) as usize] += 1;
        }
        assert!(counts[0] > 400, "{}", counts[0]);
        assert!(counts[99] < 60, "{}", counts[99]);
    }

    #[test]
    fn macs_are_formatted_per_rmm() {
        let mac = [0x00, 0x15, 0x5d, 0xff, 0x8b, 0x04];
        assert_eq!(format_mac(&mac, Side::Ncentral), "00:15:5d:ff:8b:04");
        assert_eq!(format_mac(&mac, Side::Ninjaone), "00:15:5D:FF:8B:04");
    }
}
