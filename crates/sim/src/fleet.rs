//! One simulated RMM's inventory: its clients and compact device rows over the generator's universe.
//!
//! A device row is ~80 bytes; names, serials, MACs and OS are recomputed from the universe index
//! when a page is served, so 100,000 devices stay within a few megabytes. Changes (move, rename,
//! clone, reinstall, ...) are recorded on the row, which keeps the data deterministic from the
//! seed plus the list of changes applied.
use crate::universe::{self, Machine, Side};
use std::collections::BTreeMap;

/// A fixed generation epoch (2026-11-18T00:00:00Z) keeps "same seed, same data" true across runs;
/// the demo passes the current time instead.
pub const DEFAULT_EPOCH_S: i64 = 1_795_046_400;

#[derive(Clone, Debug)]
pub struct FleetConfig {
    pub seed: u64,
    pub customers: u32,
    pub devices: u32,
    /// Share of this RMM's devices that stand on ground shared with the other simulator of the
    /// same seed: those machines exist in both (when the other side shares at least as many).
    pub shared: f64,
    pub epoch_s: i64,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            seed: 1,
            customers: 25,
            devices: 500,
            shared: 0.6,
            epoch_s: DEFAULT_EPOCH_S,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientKind {
    /// N-central customer or NinjaOne organization.
    Company,
    /// N-central site or NinjaOne location, under `parent`.
    Site,
}

#[derive(Clone, Debug)]
pub struct Client {
    pub id: i64,
    pub kind: ClientKind,
    pub parent: Option<i64>,
    pub name: String,
    pub created_s: i64,
    pub updated_s: i64,
}

/// Why a device row exists; clones and reinstall ghosts borrow another machine's hardware.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Normal,
    /// A second live device with the hardware ids of `hw` (an imaged or copied machine).
    Clone,
    /// A stale agent left behind by a reinstall of `hw`.
    ReinstallGhost,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Overrides {
    pub hostname: Option<String>,
    pub os_name: Option<String>,
    pub serial: Option<Option<String>>,
    pub offline: Option<bool>,
    pub last_contact_s: Option<i64>,
}

#[derive(Clone, Debug)]
pub struct DeviceRow {
    pub id: i64,
    /// The machine this device is.
    pub universe: u64,
    /// Whose hardware ids it reports (differs from `universe` for clones).
    pub hw: u64,
    pub origin: Origin,
    pub company: i64,
    pub site: Option<i64>,
    pub created_s: i64,
    pub updated_s: i64,
    pub overrides: Option<Box<Overrides>>,
}

/// A device as served: the row resolved against the universe.
#[derive(Clone, Debug)]
pub struct DeviceView {
    pub id: i64,
    pub company: i64,
    pub site: Option<i64>,
    pub origin: Origin,
    pub machine: Machine,
    pub created_s: i64,
    pub updated_s: i64,
    pub last_contact_s: i64,
    pub offline: bool,
}

/// What changed, for webhooks and activities.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    DeviceCreated(i64),
    DeviceUpdated(i64),
    DeviceDeleted(i64),
    ClientCreated(i64),
    ClientUpdated(i64),
    ClientDeleted(i64),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FleetError {
    #[error("device {0} not found")]
    NoDevice(i64),
    #[error("client {0} not found")]
    NoClient(i64),
    #[error("{0}")]
    Invalid(String),
}

#[derive(Debug)]
pub struct Fleet {
    pub side: Side,
    pub cfg: FleetConfig,
    clients: BTreeMap<i64, Client>,
    /// Sorted by id: pages are binary searches.
    devices: Vec<DeviceRow>,
    next_device_id: i64,
    next_client_id: i64,
    next_private: u64,
    /// Company index of the universe → this RMM's client id.
    company_ids: Vec<i64>,
}

impl Fleet {
    pub fn generate(side: Side, cfg: FleetConfig) -> Fleet {
        let seed = cfg.seed;
        let companies = u64::from(cfg.customers.max(1));
        let mut clients = BTreeMap::new();
        let (company_base, step) = match side {
            Side::Ncentral => (100, 1),
            Side::Ninjaone => (1, 1),
        };
        let mut company_ids = Vec::with_capacity(companies as usize);
        let mut site_ids: Vec<Vec<i64>> = Vec::with_capacity(companies as usize);
        for k in 0..companies {
            let id = company_base + k as i64 * step;
            company_ids.push(id);
            let created = cfg.epoch_s - 86_400 * (400 + (universe::mix(seed, 31, k) % 2000) as i64);
            clients.insert(
                id,
                Client {
                    id,
                    kind: ClientKind::Company,
                    parent: None,
                    name: universe::company_name_in(seed, k, side),
                    created_s: created,
                    updated_s: created,
                },
            );
            site_ids.push(Vec::new());
        }
        // Sites get ids after all companies (N-central shares one id space for org units).
        let mut next_site = match side {
            Side::Ncentral => company_base + companies as i64 + 1000,
            // Organizations and locations are separate id spaces in NinjaOne; distinct here
            // so one map holds both, numbered in a range of their own.
            Side::Ninjaone => companies as i64 + 1,
        };
        for k in 0..companies {
            for i in 0..universe::site_count(seed, k, side) {
                let id = next_site;
                next_site += 1;
                let parent = company_ids[k as usize];
                let created = clients[&parent].created_s + 86_400;
                clients.insert(
                    id,
                    Client {
                        id,
                        kind: ClientKind::Site,
                        parent: Some(parent),
                        name: universe::site_name(seed, k, i),
                        created_s: created,
                        updated_s: created,
                    },
                );
                site_ids[k as usize].push(id);
            }
        }
        let id_base: i64 = match side {
            Side::Ncentral => 1_000_000_000,
            Side::Ninjaone => 1,
        };
        let shared_count = (f64::from(cfg.devices) * cfg.shared.clamp(0.0, 1.0)).round() as u64;
        let mut devices = Vec::with_capacity(cfg.devices as usize);
        let mut prev_u = None;
        for j in 0..u64::from(cfg.devices) {
            let u = if j < shared_count {
                j
            } else {
                side.private_base() + j
            };
            let roll = universe::mix(seed, 41 + side_stream(side), j) % 1000;
            // About 1% clones and 1% reinstall ghosts, each borrowing the previous machine's hardware.
            let (origin, hw) = match (roll, prev_u) {
                (0..=9, Some(p)) => (Origin::Clone, p),
                (10..=19, Some(p)) => (Origin::ReinstallGhost, p),
                _ => (Origin::Normal, u),
            };
            let k = universe::company_of(seed, hw, companies);
            let company = company_ids[k as usize];
            let sites = &site_ids[k as usize];
            let site = universe::site_of(seed, hw, sites.len() as u32).map(|i| sites[i as usize]);
            let m = universe::machine(seed, hw, companies);
            let created_s = cfg.epoch_s - m.created_ago_s;
            devices.push(DeviceRow {
                id: id_base + j as i64,
                universe: u,
                hw,
                origin,
                company,
                site,
                created_s,
                updated_s: cfg.epoch_s - m.last_contact_ago_s.min(3600),
                overrides: None,
            });
            if origin == Origin::Normal {
                prev_u = Some(u);
            }
        }
        Fleet {
            side,
            next_device_id: id_base + i64::from(cfg.devices),
            next_client_id: next_site.max(company_base + companies as i64) + 10_000,
            next_private: side.private_base() + (1 << 39),
            cfg,
            clients,
            devices,
            company_ids,
        }
    }

    pub fn clients(&self) -> impl Iterator<Item = &Client> {
        self.clients.values()
    }

    pub fn client(&self, id: i64) -> Option<&Client> {
        self.clients.get(&id)
    }

    pub fn companies(&self) -> impl Iterator<Item = &Client> {
        self.clients
            .values()
            .filter(|c| c.kind == ClientKind::Company)
    }

    pub fn sites_of(&self, company: i64) -> impl Iterator<Item = &Client> {
        self.clients
            .values()
            .filter(move |c| c.parent == Some(company))
    }

    pub fn device_count(&self) -> usize {
        self.devices.len()
    }

    pub fn device_ids(&self) -> impl Iterator<Item = i64> + '_ {
        self.devices.iter().map(|d| d.id)
    }

    fn index_of(&self, id: i64) -> Option<usize> {
        self.devices.binary_search_by_key(&id, |d| d.id).ok()
    }

    pub fn device(&self, id: i64) -> Option<DeviceView> {
        self.index_of(id).map(|i| self.view(&self.devices[i]))
    }

    /// Up to `limit` devices with an id above `after`, ascending, that pass `keep`.
    pub fn devices_after(
        &self,
        after: i64,
        limit: usize,
        keep: impl Fn(&DeviceRow) -> bool,
    ) -> Vec<DeviceView> {
        let start = self.devices.partition_point(|d| d.id <= after);
        self.devices[start..]
            .iter()
            .filter(|d| keep(d))
            .take(limit)
            .map(|d| self.view(d))
            .collect()
    }

    /// Devices at positions `[offset, offset + limit)` of those that pass `keep`, and how many pass.
    pub fn devices_page(
        &self,
        offset: usize,
        limit: usize,
        keep: impl Fn(&DeviceRow) -> bool,
    ) -> (Vec<DeviceView>, usize) {
        let mut total = 0;
        let mut page = Vec::new();
        for d in &self.devices {
            if !keep(d) {
                continue;
            }
            if total >= offset && page.len() < limit {
                page.push(self.view(d));
            }
            total += 1;
        }
        (page, total)
    }

    pub fn rows(&self) -> &[DeviceRow] {
        &self.devices
    }

    /// The row resolved against the universe (hostname, ids, OS, ...).
    pub fn view(&self, d: &DeviceRow) -> DeviceView {
        let companies = u64::from(self.cfg.customers.max(1));
        let mut m = universe::machine(self.cfg.seed, d.hw, companies);
        let own = if d.hw == d.universe {
            m.clone()
        } else {
            universe::machine(self.cfg.seed, d.universe, companies)
        };
        match d.origin {
            Origin::Clone => {
                // A copied machine keeps the hardware ids but gets its own name and network cards.
                m.hostname = own.hostname;
                m.macs = own.macs;
                m.last_contact_ago_s = own.last_contact_ago_s.min(900);
            }
            Origin::ReinstallGhost => {
                m.last_contact_ago_s = m.created_ago_s.min(86_400 * 45) + 86_400 * 30;
                m.created_ago_s += 86_400 * 400;
            }
            Origin::Normal => {}
        }
        let mut last_contact_s = self.cfg.epoch_s - m.last_contact_ago_s;
        let mut offline = m.last_contact_ago_s > 86_400;
        if let Some(o) = &d.overrides {
            if let Some(h) = &o.hostname {
                m.hostname = h.clone();
            }
            if let Some(s) = &o.serial {
                m.serial = s.clone();
            }
            if let Some(os) = &o.os_name {
                m.os_name = os.clone().into();
            }
            if let Some(t) = o.last_contact_s {
                last_contact_s = t;
            }
            if let Some(off) = o.offline {
                offline = off;
            }
        }
        DeviceView {
            id: d.id,
            company: d.company,
            site: d.site,
            origin: d.origin,
            machine: m,
            created_s: d.created_s,
            updated_s: d.updated_s,
            last_contact_s,
            offline,
        }
    }

    fn check_client(&self, company: i64, site: Option<i64>) -> Result<(), FleetError> {
        match self.clients.get(&company) {
            Some(c) if c.kind == ClientKind::Company => {}
            _ => return Err(FleetError::NoClient(company)),
        }
        if let Some(s) = site
            && self.clients.get(&s).and_then(|c| c.parent) != Some(company)
        {
            return Err(FleetError::Invalid(format!(
                "site {s} is not a site of client {company}"
            )));
        }
        Ok(())
    }

    /// A new machine enrolled under `company` (and `site`); returns its id.
    pub fn add_device(
        &mut self,
        company: i64,
        site: Option<i64>,
        now_s: i64,
    ) -> Result<(i64, Change), FleetError> {
        self.check_client(company, site)?;
        let u = self.next_private;
        self.next_private += 1;
        Ok(self.push_row(u, u, Origin::Normal, company, site, now_s, None))
    }

    #[allow(clippy::too_many_arguments)]
    fn push_row(
        &mut self,
        universe: u64,
        hw: u64,
        origin: Origin,
        company: i64,
        site: Option<i64>,
        now_s: i64,
        overrides: Option<Box<Overrides>>,
    ) -> (i64, Change) {
        let id = self.next_device_id;
        self.next_device_id += 1;
        let mut ov = overrides.unwrap_or_default();
        ov.last_contact_s.get_or_insert(now_s);
        ov.offline.get_or_insert(false);
        self.devices.push(DeviceRow {
            id,
            universe,
            hw,
            origin,
            company,
            site,
            created_s: now_s,
            updated_s: now_s,
            overrides: Some(ov),
        });
        (id, Change::DeviceCreated(id))
    }

    pub fn change_device(
        &mut self,
        id: i64,
        change: Overrides,
        now_s: i64,
    ) -> Result<Change, FleetError> {
        let i = self.index_of(id).ok_or(FleetError::NoDevice(id))?;
        let row = &mut self.devices[i];
        let o = row.overrides.get_or_insert_with(Default::default);
        if change.hostname.is_some() {
            o.hostname = change.hostname;
        }
        if change.os_name.is_some() {
            o.os_name = change.os_name;
        }
        if change.serial.is_some() {
            o.serial = change.serial;
        }
        if change.offline.is_some() {
            o.offline = change.offline;
        }
        if change.last_contact_s.is_some() {
            o.last_contact_s = change.last_contact_s;
        }
        row.updated_s = now_s;
        Ok(Change::DeviceUpdated(id))
    }

    pub fn move_device(
        &mut self,
        id: i64,
        company: i64,
        site: Option<i64>,
        now_s: i64,
    ) -> Result<Change, FleetError> {
        self.check_client(company, site)?;
        let i = self.index_of(id).ok_or(FleetError::NoDevice(id))?;
        let row = &mut self.devices[i];
        row.company = company;
        row.site = site;
        row.updated_s = now_s;
        Ok(Change::DeviceUpdated(id))
    }

    pub fn delete_device(&mut self, id: i64) -> Result<Change, FleetError> {
        let i = self.index_of(id).ok_or(FleetError::NoDevice(id))?;
        self.devices.remove(i);
        Ok(Change::DeviceDeleted(id))
    }

    /// A second live device with `id`'s hardware ids and its own hostname.
    pub fn clone_device(&mut self, id: i64, now_s: i64) -> Result<(i64, Change), FleetError> {
        let i = self.index_of(id).ok_or(FleetError::NoDevice(id))?;
        let (hw, company, site) = (
            self.devices[i].hw,
            self.devices[i].company,
            self.devices[i].site,
        );
        let u = self.next_private;
        self.next_private += 1;
        Ok(self.push_row(u, hw, Origin::Clone, company, site, now_s, None))
    }

    /// The agent is removed and a new one (new id) enrolls with the same hardware and name.
    pub fn reinstall_device(
        &mut self,
        id: i64,
        now_s: i64,
    ) -> Result<(i64, Vec<Change>), FleetError> {
        let old = self.device(id).ok_or(FleetError::NoDevice(id))?;
        let row = self.devices[self.index_of(id).expect("just found")].clone();
        let deleted = self.delete_device(id)?;
        let ov = Overrides {
            hostname: Some(old.machine.hostname),
            ..row.overrides.as_deref().cloned().unwrap_or_default()
        };
        let (new_id, created) = self.push_row(
            row.universe,
            row.hw,
            Origin::Normal,
            row.company,
            row.site,
            now_s,
            Some(Box::new(ov)),
        );
        Ok((new_id, vec![deleted, created]))
    }

    pub fn add_client(
        &mut self,
        name: &str,
        parent: Option<i64>,
        now_s: i64,
    ) -> Result<(i64, Change), FleetError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(FleetError::Invalid("a client name is required".into()));
        }
        if let Some(p) = parent {
            self.check_client(p, None)?;
        }
        let id = self.next_client_id;
        self.next_client_id += 1;
        self.clients.insert(
            id,
            Client {
                id,
                kind: if parent.is_some() {
                    ClientKind::Site
                } else {
                    ClientKind::Company
                },
                parent,
                name: name.to_owned(),
                created_s: now_s,
                updated_s: now_s,
            },
        );
        Ok((id, Change::ClientCreated(id)))
    }

    pub fn rename_client(&mut self, id: i64, name: &str, now_s: i64) -> Result<Change, FleetError> {
        let c = self.clients.get_mut(&id).ok_or(FleetError::NoClient(id))?;
        c.name = name.to_owned();
        c.updated_s = now_s;
        Ok(Change::ClientUpdated(id))
    }

    /// Deletes a client with its sites and their devices, like removing a customer in the RMM.
    pub fn delete_client(&mut self, id: i64) -> Result<Vec<Change>, FleetError> {
        if !self.clients.contains_key(&id) {
            return Err(FleetError::NoClient(id));
        }
        let doomed: Vec<i64> = self
            .clients
            .values()
            .filter(|c| c.id == id || c.parent == Some(id))
            .map(|c| c.id)
            .collect();
        let mut changes = Vec::new();
        self.devices.retain(|d| {
            let gone = doomed.contains(&d.company) || d.site.is_some_and(|s| doomed.contains(&s));
            if gone {
                changes.push(Change::DeviceDeleted(d.id));
            }
            !gone
        });
        for c in &doomed {
            self.clients.remove(c);
            changes.push(Change::ClientDeleted(*c));
        }
        Ok(changes)
    }

    /// The client id of universe company `k` (tests use it to find the same company in both RMMs).
    pub fn company_id(&self, k: u64) -> Option<i64> {
        self.company_ids.get(k as usize).copied()
    }
}

fn side_stream(side: Side) -> u64 {
    match side {
        Side::Ncentral => 0,
        Side::Ninjaone => 500,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Fleet {
        fn company_id_index(&self, id: i64) -> Option<usize> {
            self.company_ids.iter().position(|c| *c == id)
        }
    }

    fn cfg(devices: u32, shared: f64) -> FleetConfig {
        FleetConfig {
            seed: 9,
            customers: 40,
            devices,
            shared,
            ..Default::default()
        }
    }

    #[test]
    fn two_rmms_of_one_seed_share_machines_with_the_same_hardware_ids() {
        let nc = Fleet::generate(Side::Ncentral, cfg(1000, 0.5));
        let ninja = Fleet::generate(Side::Ninjaone, cfg(800, 0.5));
        let serials = |f: &Fleet| -> std::collections::HashSet<String> {
            f.devices_after(i64::MIN, usize::MAX, |_| true)
                .into_iter()
                .filter(|d| d.origin == Origin::Normal)
                .filter_map(|d| d.machine.serial)
                .filter(|s| !universe::JUNK_SERIALS.contains(&s.as_str()))
                .collect()
        };
        let common = serials(&nc).intersection(&serials(&ninja)).count();
        // Ninja shares its first 400 machines, N-central its first 500: 400 in common, less junk and ghosts.
        assert!((340..=400).contains(&common), "{common}");
        // The same machine sits under the same company in both.
        let a = nc.devices_after(i64::MIN, 50, |d| d.origin == Origin::Normal);
        for d in a.iter().filter(|d| d.id - 1_000_000_000 < 400) {
            let j = d.id - 1_000_000_000;
            if let Some(n) = ninja.device(j + 1).filter(|n| n.origin == Origin::Normal) {
                assert_eq!(n.machine.serial, d.machine.serial);
                let k_nc = nc.company_id_index(d.company);
                let k_n = ninja.company_id_index(n.company);
                assert_eq!(k_nc, k_n);
            }
        }
    }

    #[test]
    fn clones_and_ghosts_reuse_hardware_ids() {
        let f = Fleet::generate(Side::Ncentral, cfg(3000, 0.0));
        let all = f.devices_after(i64::MIN, usize::MAX, |_| true);
        let clones: Vec<_> = all.iter().filter(|d| d.origin == Origin::Clone).collect();
        let ghosts: Vec<_> = all
            .iter()
            .filter(|d| d.origin == Origin::ReinstallGhost)
            .collect();
        assert!(
            clones.len() > 10 && ghosts.len() > 10,
            "{} {}",
            clones.len(),
            ghosts.len()
        );
        for g in &ghosts {
            assert!(g.offline, "a reinstall ghost is long offline");
            let twin = all.iter().find(|d| {
                d.origin == Origin::Normal
                    && d.machine.smbios_uuid == g.machine.smbios_uuid
                    && d.machine.hostname == g.machine.hostname
            });
            assert!(
                twin.is_some(),
                "a ghost has a live twin with its name and ids"
            );
        }
        let c = clones[0];
        assert!(all.iter().any(|d| d.id != c.id
            && d.machine.smbios_uuid == c.machine.smbios_uuid
            && d.machine.hostname != c.machine.hostname));
    }

    #[test]
    fn changes_apply_and_are_reported() {
        let mut f = Fleet::generate(Side::Ninjaone, cfg(100, 0.0));
        let company = f.companies().nth(1).unwrap().id;
        let (id, ch) = f.add_device(company, None, 5).unwrap();
        assert_eq!(ch, Change::DeviceCreated(id));
        assert_eq!(f.device(id).unwrap().company, company);
        f.change_device(
            id,
            Overrides {
                hostname: Some("RENAMED-01".into()),
                ..Default::default()
            },
            6,
        )
        .unwrap();
        assert_eq!(f.device(id).unwrap().machine.hostname, "RENAMED-01");
        let other = f.companies().nth(2).unwrap().id;
        f.move_device(id, other, None, 7).unwrap();
        assert_eq!(f.device(id).unwrap().company, other);
        let (clone, _) = f.clone_device(id, 8).unwrap();
        assert_eq!(
            f.device(clone).unwrap().machine.serial,
            f.device(id).unwrap().machine.serial
        );
        let (new_id, changes) = f.reinstall_device(id, 9).unwrap();
        assert_eq!(
            changes,
            vec![Change::DeviceDeleted(id), Change::DeviceCreated(new_id)]
        );
        assert!(f.device(id).is_none());
        assert_eq!(f.device(new_id).unwrap().machine.hostname, "RENAMED-01");
        assert_eq!(
            f.move_device(new_id, 424242, None, 1),
            Err(FleetError::NoClient(424242))
        );
        f.rename_client(other, "Other Name Ltd", 10).unwrap();
        assert_eq!(f.client(other).unwrap().name, "Other Name Ltd");
        let before = f.device_count();
        let changes = f.delete_client(other).unwrap();
        assert!(changes.contains(&Change::ClientDeleted(other)));
        assert!(f.device_count() < before);
        assert!(f.device(new_id).is_none());
    }

    #[test]
    fn a_hundred_thousand_devices_stay_small() {
        let f = Fleet::generate(
            Side::Ninjaone,
            FleetConfig {
                devices: 100_000,
                customers: 800,
                ..Default::default()
            },
        );
        assert_eq!(f.device_count(), 100_000);
        assert!(
            std::mem::size_of::<DeviceRow>() <= 96,
            "{}",
            std::mem::size_of::<DeviceRow>()
        );
        let page = f.devices_after(99_000, 1000, |_| true);
        assert_eq!(page.len(), 1000);
        assert!(page.windows(2).all(|w| w[0].id < w[1].id));
    }
}
