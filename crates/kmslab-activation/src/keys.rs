//! The keys file of `kmslab activation-service --keys FILE` (TOML) and `--generate-mak`.
//!
//! ```toml
//! [[mak]]
//! key = "LABMB-CDFGH-JKMPQ-RTVWX-Y234C"
//! products = ["win7-enterprise"]
//! activations = 10
//! blocked = false
//!
//! [[host_key]]
//! key = "LABHB-CDFGH-JKMPQ-RTVWX-Y2342"
//! group = "kms-b"
//! blocked = false
//! ```
//!
//! Every key must be a lab key ([`kmslab_core::labkey`]) of the right kind; products and
//! host key groups must be in the catalog; unknown fields are refused. Every error names
//! the key (or the entry) it is about.

use std::collections::HashSet;

use kmslab_core::catalog::Catalog;
use kmslab_core::labkey::{self, LabKeyKind};
use serde::Deserialize;

/// One MAK of the keys file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MakKey {
    /// The key, canonical form.
    pub key: String,
    /// Catalog names of the products it activates.
    pub products: Vec<String>,
    /// Activations the key grants (more may be added through the admin API).
    pub activations: u32,
    /// Blocked in the file (the admin API can override it).
    pub blocked: bool,
}

/// One KMS host key (CSVLK) of the keys file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKey {
    /// The key, canonical form.
    pub key: String,
    /// Its host key group (`kms-a`, `kms-b`, `kms-c`).
    pub group: String,
    /// Blocked (leaked).
    pub blocked: bool,
}

/// A validated keys file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Keys {
    /// The MAKs.
    pub maks: Vec<MakKey>,
    /// The host keys.
    pub host_keys: Vec<HostKey>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysToml {
    #[serde(default)]
    mak: Vec<MakToml>,
    #[serde(default)]
    host_key: Vec<HostKeyToml>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MakToml {
    key: String,
    products: Vec<String>,
    activations: u32,
    #[serde(default)]
    blocked: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostKeyToml {
    key: String,
    group: String,
    #[serde(default)]
    blocked: bool,
}

fn checked_key(entry: &str, key: &str, want: LabKeyKind, seen: &mut HashSet<String>) -> Result<String, String> {
    let (kind, canonical) = labkey::parse(key).map_err(|why| format!("{entry} key {key:?}: {why}"))?;
    if kind != want {
        return Err(format!("{entry} key {key:?}: is a lab {}, not a {} (LABM… is a MAK, LABH… a host key)", kind.label(), want.label()));
    }
    if !seen.insert(canonical.clone()) {
        return Err(format!("{entry} key {key:?}: appears more than once in the file"));
    }
    Ok(canonical)
}

impl Keys {
    /// Parses and validates a keys file's text against `catalog`.
    pub fn parse(text: &str, catalog: &Catalog) -> Result<Keys, String> {
        let file: KeysToml = toml::from_str(text).map_err(|e| kmslab_core::toml_error::describe(text, &e))?;
        let mut seen = HashSet::new();
        let mut keys = Keys::default();
        for m in file.mak {
            let key = checked_key("[[mak]]", &m.key, LabKeyKind::Mak, &mut seen)?;
            if m.products.is_empty() {
                return Err(format!("[[mak]] key {key}: products is empty; name at least one product"));
            }
            for p in &m.products {
                if catalog.product_by_name(p).is_none() {
                    return Err(format!("[[mak]] key {key}: products: {}", catalog.unknown_product(p)));
                }
            }
            keys.maks.push(MakKey { key, products: m.products, activations: m.activations, blocked: m.blocked });
        }
        for h in file.host_key {
            let key = checked_key("[[host_key]]", &h.key, LabKeyKind::HostKey, &mut seen)?;
            if catalog.host_key_group(&h.group).is_none() {
                let groups: Vec<&str> = catalog.host_key_groups().iter().map(|g| g.name.as_str()).collect();
                return Err(format!("[[host_key]] key {key}: group {:?} is not a host key group (one of {})", h.group, groups.join(", ")));
            }
            keys.host_keys.push(HostKey { key, group: h.group, blocked: h.blocked });
        }
        Ok(keys)
    }

    /// The MAK `key` (any case, dashes or not).
    pub fn mak(&self, key: &str) -> Option<&MakKey> {
        let k = kmslab_core::install_id::normalize_key(key);
        self.maks.iter().find(|m| kmslab_core::install_id::normalize_key(&m.key) == k)
    }

    /// The host key `key`.
    pub fn host_key(&self, key: &str) -> Option<&HostKey> {
        let k = kmslab_core::install_id::normalize_key(key);
        self.host_keys.iter().find(|h| kmslab_core::install_id::normalize_key(&h.key) == k)
    }

    /// The keys file text of these keys.
    pub fn to_toml(&self) -> String {
        let mut out =
            String::from("# kmslab activation service keys (lab keys, never Microsoft's: see docs/kms-behaviour.md \"Lab keys\")\n");
        for m in &self.maks {
            let products: Vec<String> = m.products.iter().map(|p| format!("{p:?}")).collect();
            out.push_str(&format!(
                "\n[[mak]]\nkey = \"{}\"\nproducts = [{}]\nactivations = {}\nblocked = {}\n",
                m.key,
                products.join(", "),
                m.activations,
                m.blocked
            ));
        }
        for h in &self.host_keys {
            out.push_str(&format!("\n[[host_key]]\nkey = \"{}\"\ngroup = {:?}\nblocked = {}\n", h.key, h.group, h.blocked));
        }
        out
    }
}

/// One `--generate-mak PRODUCT=COUNT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MakSpec {
    /// The product.
    pub product: String,
    /// Its activation count.
    pub activations: u32,
}

impl MakSpec {
    /// Parses `PRODUCT=COUNT`, checking the product against `catalog`.
    pub fn parse(text: &str, catalog: &Catalog) -> Result<MakSpec, String> {
        let Some((product, count)) = text.split_once('=') else {
            return Err(format!("--generate-mak {text:?}: expected PRODUCT=COUNT, e.g. win7-enterprise=10"));
        };
        if catalog.product_by_name(product).is_none() {
            return Err(format!("--generate-mak {text:?}: {}", catalog.unknown_product(product)));
        }
        let activations =
            count.parse::<u32>().map_err(|_| format!("--generate-mak {text:?}: {count:?} is not a whole number of activations"))?;
        Ok(MakSpec { product: product.to_owned(), activations })
    }
}

/// A new KMS host key of `group` (checked against `catalog`), from OS randomness.
pub fn generate_host_key(group: &str, catalog: &Catalog) -> Result<HostKey, String> {
    if catalog.host_key_group(group).is_none() {
        let groups: Vec<&str> = catalog.host_key_groups().iter().map(|g| g.name.as_str()).collect();
        return Err(format!("--generate-host-key {group:?}: not a host key group (one of {})", groups.join(", ")));
    }
    let mut random = [0u8; 20];
    random[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    random[16..].copy_from_slice(&uuid::Uuid::new_v4().as_bytes()[..4]);
    Ok(HostKey { key: labkey::generate(LabKeyKind::HostKey, &random), group: group.to_owned(), blocked: false })
}

/// New MAKs, one per spec, from OS randomness.
pub fn generate(specs: &[MakSpec]) -> Keys {
    let maks = specs
        .iter()
        .map(|s| {
            let mut random = [0u8; 20];
            random[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
            random[16..].copy_from_slice(&uuid::Uuid::new_v4().as_bytes()[..4]);
            MakKey {
                key: labkey::generate(LabKeyKind::Mak, &random),
                products: vec![s.product.clone()],
                activations: s.activations,
                blocked: false,
            }
        })
        .collect();
    Keys { maks, host_keys: Vec::new() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        Catalog::builtin()
    }

    #[test]
    fn generated_keys_round_trip_through_the_file() {
        let c = catalog();
        let specs = [MakSpec::parse("win7-enterprise=10", &c).unwrap(), MakSpec::parse("win7-professional=3", &c).unwrap()];
        let keys = generate(&specs);
        assert_eq!(keys.maks.len(), 2);
        assert_ne!(keys.maks[0].key, keys.maks[1].key);
        assert_eq!(Keys::parse(&keys.to_toml(), &c).unwrap(), keys);
        assert_eq!(keys.mak(&keys.maks[1].key.to_lowercase()).unwrap().activations, 3);
    }

    #[test]
    fn every_error_names_the_key() {
        let c = catalog();
        let good = generate(&[MakSpec { product: "win7-enterprise".into(), activations: 1 }]).maks[0].key.clone();
        let file = |body: &str| Keys::parse(body, &c).unwrap_err();
        let e = file(&format!("[[mak]]\nkey = \"{good}\"\nproducts = [\"win7-enterprize\"]\nactivations = 1\n"));
        assert!(e.contains(&good) && e.contains("did you mean win7-enterprise"), "{e}");
        let e = file("[[mak]]\nkey = \"AAAAA-BBBBB-CCCCC-DDDDD-EEEEE\"\nproducts = [\"win7-enterprise\"]\nactivations = 1\n");
        assert!(e.contains("AAAAA-BBBBB-CCCCC-DDDDD-EEEEE") && e.contains("LAB"), "{e}");
        let e = file(&format!("[[mak]]\nkey = \"{good}\"\nproducts = [\"win7-enterprise\"]\nactivations = 1\ncount = 2\n"));
        assert!(e.contains("unknown field `count`") && e.starts_with("line 5"), "{e}");
        let e = file(&format!("[[mak]]\nkey = \"{good}\"\nproducts = [\"win7-enterprise\"]\nactivations = -1\n"));
        assert!(e.contains("key activations"), "{e}");
        let e = file(&format!("[[host_key]]\nkey = \"{good}\"\ngroup = \"kms-b\"\n"));
        assert!(e.contains(&good) && e.contains("not a host key"), "{e}");
        let twice = format!("[[mak]]\nkey = \"{good}\"\nproducts = [\"win7-enterprise\"]\nactivations = 1\n");
        let e = file(&format!("{twice}{twice}"));
        assert!(e.contains("more than once"), "{e}");
        assert!(MakSpec::parse("win7-enterprise", &c).unwrap_err().contains("PRODUCT=COUNT"));
        assert!(MakSpec::parse("win7-enterprise=ten", &c).unwrap_err().contains("\"ten\""));
        assert!(generate_host_key("kms-z", &c).unwrap_err().contains("kms-b"));
        let mut keys = generate(&[]);
        keys.host_keys.push(generate_host_key("kms-b", &c).unwrap());
        assert_eq!(Keys::parse(&keys.to_toml(), &c).unwrap(), keys);
    }
}
