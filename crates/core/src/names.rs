//! Client name matching: which Tenant an RmmClient probably is.
//!
//! Only identical names after [`exact_key`] are matched automatically (DESIGN.md §3.4). Everything
//! looser is a [`NameSuggestion`] with a confidence and a human reason, because "Acme Dental" and
//! "Acme Legal" look alike to a string metric and are two different customers to the MSP.

use serde::Serialize;
use std::collections::HashMap;
use unicode_normalization::UnicodeNormalization;

/// Fuzzy similarity (0..=1, see [`similarity`]) from which a tenant may be offered as a suggestion.
///
/// 0.85 is the usual Jaro-Winkler cut-off, and in the labelled fixtures (tests) every real typo,
/// reordering or rebrand leftover scores >= 0.92. The score alone cannot keep apart the classic MSP
/// trap of two customers sharing a first word ("Acme Dental" / "Acme Legal" 0.905, "Evergreen
/// Construction" / "Evergreen Consulting" 0.933): Jaro-Winkler rewards the shared prefix. No
/// threshold separates those from the typos with a margin, so the threshold stays at 0.85 and
/// [`words_agree`] decides: every word of the shorter name must be (nearly) a word of the other.
pub const FUZZY_THRESHOLD: f64 = 0.85;

/// Two words agree when their normalised Damerau-Levenshtein similarity reaches this: one typo in a
/// five-letter word (0.8) passes, "dental" / "legal" (0.5) and "store 14" / "store 15" do not.
pub const WORD_THRESHOLD: f64 = 0.75;

/// Confidence of a suggestion whose loose keys are equal ("ACME GmbH" vs "Acme").
pub const LOOSE_CONFIDENCE: f64 = 0.95;

/// Confidence of each tenant when several tenants share the identical name, so none was auto-matched.
pub const DUPLICATE_EXACT_CONFIDENCE: f64 = 0.97;

/// Fuzzy confidence is the similarity scaled down, so a fuzzy hit never outranks a loose-key hit.
pub const FUZZY_SCALE: f64 = 0.9;

/// Evidence suggestions top out here: device overlap is strong, but one stray device must not look
/// like a certain match.
pub const EVIDENCE_MAX_CONFIDENCE: f64 = 0.98;

/// Legal-form words dropped from the end of a loose key (after punctuation is stripped, so "B.V."
/// is "bv" and "S.A.R.L." is "sarl"). Multi-word forms ("pty ltd", "gmbh & co kg") fall out of
/// dropping trailing words repeatedly.
pub const LEGAL_SUFFIXES: &[&str] = &[
    "gmbh",
    "mbh",
    "inc",
    "incorporated",
    "llc",
    "pllc",
    "llp",
    "lp",
    "ltd",
    "limited",
    "ag",
    "bv",
    "nv",
    "sa",
    "sas",
    "sarl",
    "srl",
    "spa",
    "pty",
    "pte",
    "co",
    "company",
    "corp",
    "corporation",
    "plc",
    "oy",
    "oyj",
    "ab",
    "as",
    "aps",
    "asa",
    "kg",
    "ohg",
    "gbr",
    "ug",
    "ev",
    "se",
    "ltda",
    "pc",
    "sdn",
    "bhd",
];

/// How a suggestion was found, strongest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchKind {
    /// Identical name, but more than one tenant has it, so nothing was matched automatically.
    Exact,
    /// Equal once legal suffixes, punctuation, accents and "&" are ignored.
    Loose,
    /// Similar spelling (typos, word order, small additions).
    Fuzzy,
    /// The client's devices are already Computers of the tenant through another integration.
    Evidence,
}

impl MatchKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchKind::Exact => "exact",
            MatchKind::Loose => "loose",
            MatchKind::Fuzzy => "fuzzy",
            MatchKind::Evidence => "evidence",
        }
    }
}

/// One tenant offered for an RmmClient, never applied without an admin.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NameSuggestion {
    pub tenant_id: i64,
    /// 0..=1; comparable across kinds, so suggestions from names and from evidence can be merged.
    pub confidence: f64,
    pub kind: MatchKind,
    /// Shown next to the suggestion: why the hub thinks so.
    pub reason: String,
}

fn nfkc(name: &str) -> String {
    name.nfkc().collect()
}

fn collapse_whitespace(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The key for automatic matching: names that differ only in case, spacing or Unicode form (full-width
/// letters, ligatures, composed vs decomposed accents) are the same name. Accents are kept: "Müller"
/// and "Muller" are only a suggestion.
pub fn exact_key(name: &str) -> String {
    // Lowercasing can produce decomposable sequences, so normalise again afterwards.
    let lowered = nfkc(name).to_lowercase();
    collapse_whitespace(&nfkc(&lowered))
}

/// The key for near matches: accents, "&", punctuation, a leading "the" and trailing legal forms
/// ignored. A name that is nothing but a legal form keeps it, so "AG" does not match every tenant.
pub fn loose_key(name: &str) -> String {
    let ascii = deunicode::deunicode(&nfkc(name)).to_lowercase();
    let chars: Vec<char> = ascii.chars().collect();
    let alnum = |i: Option<usize>| {
        i.and_then(|i| chars.get(i))
            .is_some_and(|c| c.is_alphanumeric())
    };
    let mut cleaned = String::with_capacity(ascii.len() + 8);
    for (i, &c) in chars.iter().enumerate() {
        match c {
            '&' | '+' => cleaned.push_str(" and "),
            // "A/S", "S/A": a slash between two single letters is part of a legal form.
            '/' if alnum(i.checked_sub(1))
                && !alnum(i.checked_sub(2))
                && alnum(Some(i + 1))
                && !alnum(Some(i + 2)) => {}
            // Dropped inside words: "B.V." is "bv", "O'Brien" is "obrien", "St. Mary's" is "st marys".
            '.' | '\'' | '`' => {}
            c if c.is_alphanumeric() => cleaned.push(c),
            _ => cleaned.push(' '),
        }
    }
    let tokens: Vec<&str> = cleaned.split_whitespace().collect();
    let mut end = tokens.len();
    let mut start = 0;
    if tokens.len() > 1 && tokens[0] == "the" {
        start = 1;
    }
    let mut stripped_any = false;
    while end > start + 1 {
        let last = tokens[end - 1];
        // "Smith & Co" / "Müller GmbH & Co. KG": the "and" belongs to the legal form.
        if LEGAL_SUFFIXES.contains(&last) || (stripped_any && last == "and") {
            end -= 1;
            stripped_any = true;
        } else {
            break;
        }
    }
    tokens[start..end].join(" ")
}

fn token_sorted(loose: &str) -> String {
    let mut tokens: Vec<&str> = loose.split(' ').filter(|t| !t.is_empty()).collect();
    tokens.sort_unstable();
    tokens.join(" ")
}

/// Similarity of two client names in 0..=1: the best of Jaro-Winkler (typos), normalised Levenshtein
/// on sorted words (word order) and Sørensen-Dice on letter pairs (insertions), all on loose keys.
pub fn similarity(a: &str, b: &str) -> f64 {
    Keys::new(a).similarity(&Keys::new(b), 0.0)
}

/// True when every word of the name with fewer words is, give or take a typo, a word of the other
/// (or two adjacent words of it written together: "Blueridge" / "Blue Ridge"). Words with digits
/// must be equal, because "Store 14" and "Store 15" are two sites.
pub fn words_agree(a: &str, b: &str) -> bool {
    words_agree_keys(&loose_key(a), &loose_key(b))
}

fn words_agree_keys(a: &str, b: &str) -> bool {
    let wa: Vec<&str> = a.split(' ').filter(|w| !w.is_empty()).collect();
    let wb: Vec<&str> = b.split(' ').filter(|w| !w.is_empty()).collect();
    if wa.is_empty() || wb.is_empty() {
        return false;
    }
    let covered = |few: &[&str], many: &[&str]| {
        let joined: Vec<String> = many
            .windows(2)
            .map(|w| format!("{}{}", w[0], w[1]))
            .collect();
        few.iter().all(|w| {
            many.iter()
                .copied()
                .chain(joined.iter().map(String::as_str))
                .any(|m| word_agrees(w, m))
        })
    };
    match wa.len().cmp(&wb.len()) {
        std::cmp::Ordering::Less => covered(&wa, &wb),
        std::cmp::Ordering::Greater => covered(&wb, &wa),
        std::cmp::Ordering::Equal => covered(&wa, &wb) && covered(&wb, &wa),
    }
}

fn word_agrees(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    if a.chars().any(|c| c.is_ascii_digit()) || b.chars().any(|c| c.is_ascii_digit()) {
        return false;
    }
    strsim::normalized_damerau_levenshtein(a, b) >= WORD_THRESHOLD
}

/// The precomputed forms of one name, so matching 5,000 clients against 5,000 tenants does not
/// normalise the same tenant name 5,000 times.
#[derive(Clone, Debug)]
struct Keys {
    exact: String,
    loose: String,
    sorted: String,
    /// Length of `loose` in chars.
    len: usize,
    /// Letter-pair multiset of `loose` without whitespace, sorted: Sørensen-Dice by merging.
    bigrams: Vec<u64>,
    /// Character histogram of `loose` (a-z, 0-9, other), for the cheap upper bound.
    hist: [u8; 37],
}

fn bucket(c: char) -> usize {
    match c {
        'a'..='z' => c as usize - 'a' as usize,
        '0'..='9' => 26 + c as usize - '0' as usize,
        _ => 36,
    }
}

impl Keys {
    fn new(name: &str) -> Keys {
        let loose = loose_key(name);
        let sorted = token_sorted(&loose);
        let chars: Vec<char> = loose.chars().collect();
        let dense: Vec<char> = chars
            .iter()
            .copied()
            .filter(|c| !c.is_whitespace())
            .collect();
        let mut bigrams: Vec<u64> = dense
            .windows(2)
            .map(|w| (u64::from(w[0]) << 32) | u64::from(w[1]))
            .collect();
        bigrams.sort_unstable();
        let mut hist = [0u8; 37];
        for &c in &chars {
            let h = &mut hist[bucket(c)];
            *h = h.saturating_add(1);
        }
        Keys {
            exact: exact_key(name),
            len: chars.len(),
            loose,
            sorted,
            bigrams,
            hist,
        }
    }

    /// Sørensen-Dice on letter pairs, as `strsim::sorensen_dice` computes it, without allocating.
    fn dice(&self, other: &Keys) -> f64 {
        let (a, b) = (&self.bigrams, &other.bigrams);
        if a.is_empty() || b.is_empty() {
            return 0.0;
        }
        let (mut i, mut j, mut common) = (0, 0, 0usize);
        while i < a.len() && j < b.len() {
            match a[i].cmp(&b[j]) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    common += 1;
                    i += 1;
                    j += 1;
                }
            }
        }
        (2 * common) as f64 / (a.len() + b.len()) as f64
    }

    /// The similarity, or any value below `floor` when it certainly is below `floor`: the shared
    /// character count bounds Jaro-Winkler and Levenshtein, so most pairs skip both.
    fn similarity(&self, other: &Keys, floor: f64) -> f64 {
        if self.loose.is_empty() || other.loose.is_empty() {
            return 0.0;
        }
        if self.loose == other.loose {
            return 1.0;
        }
        let dice = self.dice(other);
        if dice >= 1.0 {
            return dice;
        }
        let common: usize = self
            .hist
            .iter()
            .zip(other.hist.iter())
            .map(|(a, b)| usize::from(*a.min(b)))
            .sum();
        let (la, lb) = (self.len as f64, other.len as f64);
        let c = common as f64;
        // Jaro <= (m/|a| + m/|b| + 1) / 3 with m <= shared chars; Winkler adds at most 0.4 * (1 - jaro).
        let jaro_max = ((c / la + c / lb + 1.0) / 3.0).min(1.0);
        let jw_max = jaro_max + 0.4 * (1.0 - jaro_max);
        // Levenshtein distance >= max length - shared chars.
        let lev_max = c / la.max(lb);
        let mut best = dice;
        if jw_max >= floor && jw_max > best {
            best = best.max(strsim::jaro_winkler(&self.loose, &other.loose));
        }
        if lev_max >= floor && lev_max > best {
            best = best.max(strsim::normalized_levenshtein(&self.sorted, &other.sorted));
        }
        best.clamp(0.0, 1.0)
    }
}

struct Entry {
    tenant_id: i64,
    name: String,
    keys: Keys,
}

/// All tenants, normalised once, for matching every RmmClient of an import against them.
pub struct TenantIndex {
    entries: Vec<Entry>,
    by_exact: HashMap<String, Vec<usize>>,
    by_loose: HashMap<String, Vec<usize>>,
}

impl TenantIndex {
    pub fn new(tenants: &[(i64, String)]) -> TenantIndex {
        let mut entries = Vec::with_capacity(tenants.len());
        let mut by_exact: HashMap<String, Vec<usize>> = HashMap::new();
        let mut by_loose: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, (id, name)) in tenants.iter().enumerate() {
            let keys = Keys::new(name);
            if !keys.exact.is_empty() {
                by_exact.entry(keys.exact.clone()).or_default().push(i);
            }
            if !keys.loose.is_empty() {
                by_loose.entry(keys.loose.clone()).or_default().push(i);
            }
            entries.push(Entry {
                tenant_id: *id,
                name: name.clone(),
                keys,
            });
        }
        TenantIndex {
            entries,
            by_exact,
            by_loose,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The tenant an RmmClient of this name is matched to automatically: only when exactly one tenant
    /// has the identical name, because picking one of two same-named tenants is a guess.
    pub fn exact(&self, name: &str) -> Option<i64> {
        match self.by_exact.get(&exact_key(name))?.as_slice() {
            [one] => Some(self.entries[*one].tenant_id),
            _ => None,
        }
    }

    /// Tenants worth offering for an RmmClient name, best first, at most `limit`.
    ///
    /// The tenant [`TenantIndex::exact`] returns is never among them: it is the automatic match, and
    /// listing it again as a "suggestion" would make the UI show a decided mapping as an open
    /// question (and count it twice). Same-named duplicates, which `exact` refuses, are offered here.
    pub fn suggest(&self, name: &str, limit: usize) -> Vec<NameSuggestion> {
        if limit == 0 {
            return Vec::new();
        }
        let q = Keys::new(name);
        if q.loose.is_empty() {
            return Vec::new();
        }
        let auto = self.exact(name);
        let mut out: Vec<NameSuggestion> = Vec::new();
        let mut taken = vec![false; self.entries.len()];
        if auto.is_none()
            && let Some(same) = self.by_exact.get(&q.exact)
        {
            for &i in same {
                taken[i] = true;
                out.push(NameSuggestion {
                    tenant_id: self.entries[i].tenant_id,
                    confidence: DUPLICATE_EXACT_CONFIDENCE,
                    kind: MatchKind::Exact,
                    reason: format!(
                        "identical name, but {} tenants are called {:?}: pick the right one",
                        same.len(),
                        self.entries[i].name
                    ),
                });
            }
        }
        if let Some(same) = self.by_loose.get(&q.loose) {
            for &i in same {
                let e = &self.entries[i];
                if taken[i] || Some(e.tenant_id) == auto {
                    continue;
                }
                taken[i] = true;
                out.push(NameSuggestion {
                    tenant_id: e.tenant_id,
                    confidence: LOOSE_CONFIDENCE,
                    kind: MatchKind::Loose,
                    reason: format!(
                        "same name apart from legal suffix/punctuation/accents: {:?} vs {:?}",
                        name.trim(),
                        e.name
                    ),
                });
            }
        }
        for (i, e) in self.entries.iter().enumerate() {
            if taken[i] || Some(e.tenant_id) == auto {
                continue;
            }
            // Normalised Levenshtein and Dice cannot reach the threshold when the lengths differ this
            // much, and Jaro-Winkler is bounded by the shared characters: checked cheaply first.
            let score = q.similarity(&e.keys, FUZZY_THRESHOLD);
            if score >= FUZZY_THRESHOLD && words_agree_keys(&q.loose, &e.keys.loose) {
                out.push(NameSuggestion {
                    tenant_id: e.tenant_id,
                    confidence: score * FUZZY_SCALE,
                    kind: MatchKind::Fuzzy,
                    reason: format!(
                        "similar name ({:.0}% similar): {:?} vs {:?}",
                        score * 100.0,
                        name.trim(),
                        e.name
                    ),
                });
            }
        }
        out.sort_by(|a, b| {
            b.confidence
                .total_cmp(&a.confidence)
                .then(a.tenant_id.cmp(&b.tenant_id))
        });
        out.truncate(limit);
        out
    }
}

/// A suggestion from devices rather than names: `shared_devices` of the client's `client_devices`
/// are already Computers of the tenant through another integration (CIPP's device-overlap mapping).
/// Confidence grows with the overlap share and is damped for tiny clients, where two devices out of
/// two prove little.
pub fn evidence_suggestion(
    tenant_id: i64,
    tenant_name: &str,
    shared_devices: u32,
    client_devices: u32,
) -> NameSuggestion {
    let total = client_devices.max(shared_devices);
    let share = if total == 0 {
        0.0
    } else {
        f64::from(shared_devices) / f64::from(total)
    };
    // With n shared devices the damping is n / (n + 1): 1 device 0.5, 3 devices 0.75, 20 devices 0.95.
    let damping = f64::from(shared_devices) / (f64::from(shared_devices) + 1.0);
    let confidence =
        (share * damping * EVIDENCE_MAX_CONFIDENCE).clamp(0.0, EVIDENCE_MAX_CONFIDENCE);
    let noun = if total == 1 { "device" } else { "devices" };
    let verb = if shared_devices == 1 { "is" } else { "are" };
    let what = if shared_devices == 1 {
        "a computer"
    } else {
        "computers"
    };
    NameSuggestion {
        tenant_id,
        confidence,
        kind: MatchKind::Evidence,
        reason: format!(
            "{shared_devices} of {total} {noun} of this client {verb} already {what} of {tenant_name:?} (via another integration)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_key_ignores_case_spacing_and_unicode_form_only() {
        assert_eq!(exact_key("  Acme   Dental  "), "acme dental");
        assert_eq!(exact_key("ACME\tDental"), "acme dental");
        // Full-width letters and the "ﬁ" ligature are compatibility forms.
        assert_eq!(exact_key("ＡＣＭＥ ﬁnance"), "acme finance");
        // Composed and decomposed "ü" are one name.
        assert_eq!(exact_key("Mu\u{0308}ller"), exact_key("Müller"));
        // Accents and punctuation are not ignored: those are near matches, not automatic.
        assert_ne!(exact_key("Müller"), exact_key("Muller"));
        assert_ne!(exact_key("Acme Inc."), exact_key("Acme Inc"));
    }

    #[test]
    fn loose_key_drops_what_msps_type_differently() {
        let cases = [
            ("Acme GmbH", "acme"),
            ("ACME, Inc.", "acme"),
            ("Acme Incorporated", "acme"),
            ("Müller Bau GmbH & Co. KG", "muller bau"),
            ("Smith & Co", "smith"),
            ("Plumbing & Heating Ltd", "plumbing and heating"),
            ("Northwind Pty Ltd", "northwind"),
            ("Fabrikam B.V.", "fabrikam"),
            ("Société Générale S.A.", "societe generale"),
            ("Café Lumière S.A.R.L.", "cafe lumiere"),
            ("O'Brien Law Group", "obrien law group"),
            ("St. Mary's Schools", "st marys schools"),
            ("The Acme Group", "acme group"),
            ("Østergaard A/S", "ostergaard"),
            ("Zürich Holdings AG", "zurich holdings"),
            ("Acme-Dental LLC", "acme dental"),
            // A name that is only a legal form keeps it.
            ("AG", "ag"),
            ("Co Op Inc", "co op"),
        ];
        for (name, key) in cases {
            assert_eq!(loose_key(name), key, "{name}");
        }
    }

    #[test]
    fn similarity_is_symmetric_bounded_and_one_for_loose_equals() {
        assert_eq!(similarity("Acme GmbH", "ACME"), 1.0);
        assert_eq!(similarity("", "Acme"), 0.0);
        for (a, b) in [
            ("Northwind Traders", "Northwind Tradres"),
            ("Acme Dental", "Acme Legal"),
            ("Contoso", "Fabrikam"),
        ] {
            let s = similarity(a, b);
            assert!((0.0..=1.0).contains(&s), "{a} {b} {s}");
            assert!((s - similarity(b, a)).abs() < 1e-12, "{a} {b}");
        }
        assert!(similarity("Contoso", "Fabrikam") < 0.5);
    }

    #[test]
    fn words_must_agree_not_just_letters() {
        assert!(words_agree("Northwind Tradres", "Northwind Traders"));
        assert!(words_agree("Blueridge Realty", "Blue Ridge Realty"));
        assert!(
            words_agree("Acme Dental", "Acme Dental Group"),
            "a word added"
        );
        assert!(!words_agree("Acme Dental", "Acme Legal"));
        assert!(!words_agree("Store 14", "Store 15"));
        assert!(!words_agree("", "Acme"));
    }

    #[test]
    fn word_order_is_caught_by_the_sorted_levenshtein_term() {
        let s = similarity("Dental Acme Partners", "Acme Dental Partners");
        assert!(s >= 0.99, "{s}");
    }

    #[test]
    fn own_dice_agrees_with_strsim() {
        for (a, b) in [
            ("Acme Dental", "Acme Legal"),
            ("Northwind Traders", "Northwind Tradres"),
            ("aaa", "aa"),
            ("Blue Ridge Realty", "Blueridge Realty"),
            ("x", "xy"),
        ] {
            let (ka, kb) = (Keys::new(a), Keys::new(b));
            let ours = ka.dice(&kb);
            let theirs = strsim::sorensen_dice(&ka.loose, &kb.loose);
            assert!(
                (ours - theirs).abs() < 1e-12,
                "{a} / {b}: {ours} vs {theirs}"
            );
        }
    }

    #[test]
    fn the_cheap_bound_never_hides_a_match() {
        // With a floor the result may be lowered only when it is below the floor anyway.
        let names = [
            "Acme Dental",
            "Acme Legal",
            "Acme Dental Group",
            "Northwind Traders",
            "Northwind Tradres",
            "Dental Acme",
            "Summit Medical Center",
            "Summit Dental",
            "Contoso Ltd Accounting",
            "Contoso Accounting",
            "Bright Harbor Realty",
            "Brite Harbor Realty",
            "a",
            "ab",
        ];
        for a in names {
            for b in names {
                let full = similarity(a, b);
                let bounded = Keys::new(a).similarity(&Keys::new(b), FUZZY_THRESHOLD);
                if full >= FUZZY_THRESHOLD {
                    assert!((full - bounded).abs() < 1e-12, "{a} / {b}");
                } else {
                    assert!(bounded < FUZZY_THRESHOLD, "{a} / {b}");
                }
            }
        }
    }

    fn tenants() -> Vec<(i64, String)> {
        [
            "Acme Dental",
            "Acme Legal",
            "Northwind Traders",
            "Müller Bau GmbH",
            "Bright Harbor Realty & Partners",
            "O'Brien Law Group",
            "Summit Medical Center",
            "Contoso Accounting",
            "Fabrikam, Inc.",
            "Blue Ridge Logistics",
            "Blue Ridge Dental",
            "Zürich Holdings AG",
            "Café Lumière",
            "St. Mary's Schools",
            "Riverside Veterinary Clinic",
            "Evergreen Construction",
            "Evergreen Consulting",
            "Pinnacle Pharmacy",
            "Keystone Credit Union",
            "Store 15",
            "Fabrikam Labs",
            "Twin Co",
            "Twin Co",
        ]
        .iter()
        .enumerate()
        .map(|(i, n)| (i as i64 + 1, (*n).to_owned()))
        .collect()
    }

    fn id_of(name: &str) -> i64 {
        tenants().iter().find(|(_, n)| n == name).unwrap().0
    }

    #[test]
    fn identical_names_match_automatically_and_only_when_unique() {
        let idx = TenantIndex::new(&tenants());
        assert_eq!(idx.exact("  ACME   dental "), Some(id_of("Acme Dental")));
        assert_eq!(
            idx.exact("Mu\u{0308}ller Bau GmbH"),
            Some(id_of("Müller Bau GmbH"))
        );
        assert_eq!(idx.exact("Acme Dental GmbH"), None, "near is not exact");
        assert_eq!(idx.exact("Twin Co"), None, "two tenants share the name");
        // The two same-named tenants are offered instead, both, marked as exact.
        let s = idx.suggest("twin co", 5);
        assert_eq!(s.len(), 2);
        assert!(s.iter().all(|x| x.kind == MatchKind::Exact));
        assert!(s[0].reason.contains("2 tenants"), "{}", s[0].reason);
    }

    #[test]
    fn the_automatic_match_is_never_also_a_suggestion() {
        let idx = TenantIndex::new(&tenants());
        let auto = idx.exact("Acme Dental").unwrap();
        let s = idx.suggest("Acme Dental", 10);
        assert!(s.iter().all(|x| x.tenant_id != auto), "{s:?}");
        // And nothing else is close enough to be offered for it: "Acme Legal" is another customer.
        assert!(s.is_empty(), "{s:?}");
    }

    /// (RMM client name, expected tenant, kind). The labelled fixture set the threshold was chosen on.
    const POSITIVES: &[(&str, &str, MatchKind)] = &[
        ("ACME DENTAL, LLC", "Acme Dental", MatchKind::Loose),
        ("Muller Bau", "Müller Bau GmbH", MatchKind::Loose),
        (
            "Bright Harbor Realty and Partners",
            "Bright Harbor Realty & Partners",
            MatchKind::Loose,
        ),
        (
            "OBrien Law Group LLP",
            "O'Brien Law Group",
            MatchKind::Loose,
        ),
        ("Fabrikam", "Fabrikam, Inc.", MatchKind::Loose),
        ("Zurich Holdings", "Zürich Holdings AG", MatchKind::Loose),
        ("Cafe Lumiere SARL", "Café Lumière", MatchKind::Loose),
        ("St Marys Schools", "St. Mary's Schools", MatchKind::Loose),
        ("Acme-Dental", "Acme Dental", MatchKind::Loose),
        (
            "The Northwind Traders Ltd.",
            "Northwind Traders",
            MatchKind::Loose,
        ),
        // Typos.
        ("Northwind Tradres", "Northwind Traders", MatchKind::Fuzzy),
        (
            "Sumit Medical Center",
            "Summit Medical Center",
            MatchKind::Fuzzy,
        ),
        (
            "Riverside Veterinary Clnic",
            "Riverside Veterinary Clinic",
            MatchKind::Fuzzy,
        ),
        (
            "Keystone Credit Unoin",
            "Keystone Credit Union",
            MatchKind::Fuzzy,
        ),
        // Word order and a leftover of the old name after a rebrand.
        (
            "Medical Center Summit",
            "Summit Medical Center",
            MatchKind::Fuzzy,
        ),
        (
            "Pinnacle Pharmacy (Old)",
            "Pinnacle Pharmacy",
            MatchKind::Fuzzy,
        ),
        (
            "Blue Ridge Logistic",
            "Blue Ridge Logistics",
            MatchKind::Fuzzy,
        ),
        (
            "Blueridge Logistics",
            "Blue Ridge Logistics",
            MatchKind::Fuzzy,
        ),
        // A word added or dropped is offered too (a division, a longer legal name): the admin decides.
        (
            "Bright Harbor Realty",
            "Bright Harbor Realty & Partners",
            MatchKind::Fuzzy,
        ),
    ];

    /// Different customers that share words: offering them would invite a wrong mapping.
    const NEGATIVES: &[(&str, &str)] = &[
        ("Acme Legal Services", "Acme Dental"),
        ("Blue Ridge Dental", "Blue Ridge Logistics"),
        ("Summit Dental", "Summit Medical Center"),
        ("Evergreen Construction", "Evergreen Consulting"),
        ("Contoso Engineering", "Contoso Accounting"),
        ("Pinnacle Realty", "Pinnacle Pharmacy"),
        ("Keystone Motors", "Keystone Credit Union"),
        ("Riverside Dental", "Riverside Veterinary Clinic"),
        ("Northwind Logistics", "Northwind Traders"),
        ("Store 14", "Store 15"),
    ];

    #[test]
    fn labelled_fixtures_positives_are_suggested_first() {
        let idx = TenantIndex::new(&tenants());
        for (client, tenant, kind) in POSITIVES {
            let s = idx.suggest(client, 3);
            let want = id_of(tenant);
            assert!(
                !s.is_empty() && s[0].tenant_id == want && s[0].kind == *kind,
                "{client:?} -> {tenant:?} ({kind:?}): {s:?}"
            );
            match kind {
                MatchKind::Loose => assert_eq!(s[0].confidence, LOOSE_CONFIDENCE),
                MatchKind::Fuzzy => {
                    assert!(s[0].confidence >= FUZZY_THRESHOLD * FUZZY_SCALE);
                    assert!(s[0].confidence < LOOSE_CONFIDENCE);
                    assert!(s[0].reason.contains("% similar"), "{}", s[0].reason);
                }
                _ => unreachable!(),
            }
        }
    }

    #[test]
    fn labelled_fixtures_negatives_stay_below_the_threshold() {
        let idx = TenantIndex::new(&tenants());
        for (client, tenant) in NEGATIVES {
            assert!(!words_agree(client, tenant), "{client:?} vs {tenant:?}");
            let s = idx.suggest(client, 10);
            assert!(
                s.iter().all(|x| x.tenant_id != id_of(tenant)),
                "{client:?} must not suggest {tenant:?}: {s:?}"
            );
        }
        // The pairs the word check exists for: the score alone would offer them.
        for (a, b) in [
            ("Acme Dental", "Acme Legal"),
            ("Evergreen Construction", "Evergreen Consulting"),
        ] {
            let trap = similarity(a, b);
            assert!(trap > FUZZY_THRESHOLD, "{a} / {b}: {trap}");
        }
    }

    #[test]
    fn loose_reason_names_both_spellings() {
        let idx = TenantIndex::new(&tenants());
        let s = idx.suggest("ACME DENTAL GmbH", 1);
        assert_eq!(
            s[0].reason,
            "same name apart from legal suffix/punctuation/accents: \"ACME DENTAL GmbH\" vs \"Acme Dental\""
        );
    }

    #[test]
    fn suggestions_are_ordered_and_limited() {
        let idx = TenantIndex::new(&tenants());
        // Loose hit first, then fuzzy ones, in descending confidence.
        let s = idx.suggest("Blue Ridge Logistics Inc", 10);
        assert_eq!(s[0].tenant_id, id_of("Blue Ridge Logistics"));
        assert!(s.windows(2).all(|w| w[0].confidence >= w[1].confidence));
        assert!(idx.suggest("Blue Ridge Logistics Inc", 0).is_empty());
        assert!(idx.suggest("...", 5).is_empty(), "nothing to match on");
        assert!(idx.suggest("Completely Unrelated Name", 5).is_empty());
    }

    #[test]
    fn evidence_scales_with_overlap_and_size() {
        let s = evidence_suggestion(7, "Acme", 14, 20);
        assert_eq!(s.kind, MatchKind::Evidence);
        assert_eq!(s.tenant_id, 7);
        assert_eq!(
            s.reason,
            "14 of 20 devices of this client are already computers of \"Acme\" (via another integration)"
        );
        let all = evidence_suggestion(7, "Acme", 20, 20).confidence;
        let most = s.confidence;
        let few = evidence_suggestion(7, "Acme", 2, 20).confidence;
        let tiny = evidence_suggestion(7, "Acme", 1, 1).confidence;
        assert!(all > most && most > few, "{all} {most} {few}");
        assert!(all <= EVIDENCE_MAX_CONFIDENCE && all > 0.9, "{all}");
        assert!(tiny <= 0.5, "one device of one proves little: {tiny}");
        assert_eq!(evidence_suggestion(7, "Acme", 0, 0).confidence, 0.0);
        assert!(
            evidence_suggestion(7, "Acme", 1, 1)
                .reason
                .starts_with("1 of 1 device of this client is already a computer")
        );
    }

    #[test]
    fn scales_to_thousands_of_tenants_with_the_prefilter() {
        // Not a timing assertion: checks the prefilter skips the expensive metrics for most pairs
        // while finding the planted typo among 3,000 generated names.
        let words = [
            "Acme", "Harbor", "Summit", "Ridge", "Cedar", "Atlas", "Nova", "Willow", "Granite",
            "Beacon",
        ];
        let trades = [
            "Dental", "Legal", "Realty", "Motors", "Foods", "Labs", "Clinic", "Freight", "Design",
            "Capital",
        ];
        let mut tenants = Vec::new();
        for i in 0..3000i64 {
            let a = words[(i % 10) as usize];
            let b = trades[((i / 10) % 10) as usize];
            tenants.push((i, format!("{a} {b} {}", i / 100)));
        }
        tenants.push((9999, "Quetzalcoatl Brewing Company".to_owned()));
        let idx = TenantIndex::new(&tenants);
        let s = idx.suggest("Quetzalcoatl Brewnig", 3);
        assert_eq!(s[0].tenant_id, 9999, "{s:?}");
    }
}
