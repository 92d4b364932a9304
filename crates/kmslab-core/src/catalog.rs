//! The product catalog as data: products, counted groups and host key groups.
//!
//! The built-in catalog (`catalog.toml`, compiled into every binary) covers every product a
//! Windows 7-era KMS host serves: Windows Vista, Windows 7, Windows Server 2008 and 2008 R2,
//! and the Office 2010 volume products. Each product names its [`ClientFamily`], which
//! carries what those clients do differently (SRV ordering, rearms). A user file in the same TOML format adds
//! products without a code change ([`Catalog::extend_from_toml`]). GVLK lookup ignores
//! case and dashes.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;
use uuid::Uuid;

use crate::srv::SrvPolicy;

/// The catalog that ships inside the binaries.
pub const BUILTIN_TOML: &str = include_str!("catalog.toml");

/// A count the host keeps separately (all Windows editions share one; Office has its own).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountedGroup {
    /// Short name, e.g. `windows`.
    pub name: String,
    /// The KMS counted ID requests carry.
    pub kms_counted_id: Uuid,
    /// What the group covers.
    pub description: String,
    /// Where the ID comes from (`microsoft` or `kmslab`).
    pub id_source: String,
}

/// A host key group: what kind of KMS host key a host has installed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostKeyGroup {
    /// Short name used by `--host-key-group`, e.g. `kms-b`.
    pub name: String,
    /// The `Name:` line of the host's `slmgr /dli`.
    pub display_name: String,
    /// The `Description:` line of the host's `slmgr /dli`.
    pub description: String,
    /// The `Partial Product Key:` line (five characters, not a real key).
    pub partial_key: String,
}

/// The edition family of a product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProductKind {
    /// A client edition of Windows (threshold 25).
    Client,
    /// A server edition of Windows (threshold 5).
    Server,
    /// A volume edition of Office (threshold 5, its own count).
    Office,
}

/// The generation of licensing client a product runs on: where Microsoft documents a
/// difference between them, the activator follows the family of its product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientFamily {
    /// Windows 7 and Windows Server 2008 R2 (the default for a product that names none).
    #[default]
    Windows7,
    /// Windows Vista (SP1 and later) and Windows Server 2008: priority and weight of SRV
    /// records are ignored; no reduced-functionality mode (Notification, as Windows 7).
    Vista,
    /// The Office 2010 volume products: rearm five times. Nothing else documented differs,
    /// so the rest is Windows 7's.
    Office2010,
}

impl ClientFamily {
    /// The name used in catalog files (`client_family = "vista"`).
    pub fn name(self) -> &'static str {
        match self {
            ClientFamily::Windows7 => "windows7",
            ClientFamily::Vista => "vista",
            ClientFamily::Office2010 => "office2010",
        }
    }

    /// How clients of this family order the SRV records discovery found. Only Windows 7
    /// and Windows Server 2008 R2 use priority and weight (Volume Activation Planning
    /// Guide, "Client discovery of KMS"); nothing says Office 2010 differs from Windows 7.
    pub fn srv_policy(self) -> SrvPolicy {
        match self {
            ClientFamily::Vista => SrvPolicy::IgnorePriorityWeight,
            ClientFamily::Windows7 | ClientFamily::Office2010 => SrvPolicy::PriorityWeight,
        }
    }

    /// True when KMS activation checks the machine's ACPI_SLIC table for a Windows
    /// marker (KB942962: Windows 7 and Vista clients only; Office is not checked).
    pub fn checks_slic(self) -> bool {
        matches!(self, ClientFamily::Windows7 | ClientFamily::Vista)
    }

    /// Rearms a fresh installation allows unless the product says otherwise: Windows Vista
    /// Business and Windows Server 2008 three (Volume Activation 2.0 Operations Guide),
    /// Office 2010 five; Windows 7 three (our choice, no source gives it).
    pub fn default_rearm_count(self) -> u32 {
        match self {
            ClientFamily::Windows7 | ClientFamily::Vista => 3,
            ClientFamily::Office2010 => 5,
        }
    }
}

/// One volume-licensed product.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Product {
    /// Short name used by `--product`, e.g. `win7-enterprise`.
    pub name: String,
    /// The `Name:` line of `slmgr /dli`.
    pub display_name: String,
    /// The `Description:` line of `slmgr /dli` (names the channel).
    pub description: String,
    /// The public setup key (GVLK), as published.
    pub gvlk: String,
    /// Application ID (Windows or Office).
    pub application_id: Uuid,
    /// Activation (SKU) ID.
    pub activation_id: Uuid,
    /// Name of the counted group this product is counted in.
    pub counted_group: String,
    /// The N-policy: the count the client needs (25 client, 5 server and Office).
    pub required_count: u32,
    /// Edition family.
    pub kind: ProductKind,
    /// The host key groups that can activate this product.
    pub served_by: Vec<String>,
    /// Where the IDs come from (`microsoft` or `kmslab`).
    pub id_source: String,
    /// The client family (`windows7` when the entry names none).
    #[serde(default)]
    pub client_family: ClientFamily,
    /// Rearms a fresh installation allows, when it differs from the family's default.
    #[serde(default)]
    pub rearm_count: Option<u32>,
    /// The counted group's KMS counted ID, filled in when the catalog is built.
    #[serde(skip)]
    pub kms_counted_id: Uuid,
}

impl Product {
    /// The last five characters of the GVLK, as `Partial Product Key:` shows them.
    pub fn partial_key(&self) -> &str {
        let k = self.gvlk.as_str();
        // Count characters, not bytes: a user catalog's key may end in non-ASCII
        // whitespace (a pasted no-break space), which `normalize_gvlk` accepts, and slicing
        // inside it would panic.
        let start = k.char_indices().rev().nth(4).map_or(0, |(i, _)| i);
        &k[start..]
    }

    /// Rearms a fresh installation of this product allows.
    pub fn rearm_count(&self) -> u32 {
        self.rearm_count.unwrap_or_else(|| self.client_family.default_rearm_count())
    }

    /// True when a host with any of `key_groups` installed can activate this product.
    pub fn served_by_any<S: AsRef<str>>(&self, key_groups: &[S]) -> bool {
        key_groups.iter().any(|g| self.served_by.iter().any(|s| s == g.as_ref()))
    }
}

/// Why a catalog file was refused. Every variant names the entry and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    /// Not valid TOML, or a key the format does not know (serde's message names it).
    #[error("catalog: {0}")]
    Syntax(String),
    /// A value is invalid.
    #[error("catalog: {entry}: `{field}` {problem}")]
    Invalid {
        /// The product or group name.
        entry: String,
        /// The field.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    counted_group: Vec<CountedGroup>,
    #[serde(default)]
    host_key_group: Vec<HostKeyGroup>,
    #[serde(default)]
    product: Vec<Product>,
}

/// The products, counted groups and host key groups known to a process.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    products: Vec<Arc<Product>>,
    counted_groups: Vec<CountedGroup>,
    host_key_groups: Vec<HostKeyGroup>,
    by_activation_id: HashMap<Uuid, usize>,
}

/// Upper-cases and drops dashes and spaces so `33pxh7y6kf...` finds the same product.
pub fn normalize_gvlk(key: &str) -> String {
    key.chars().filter(|c| *c != '-' && !c.is_whitespace()).map(|c| c.to_ascii_uppercase()).collect()
}

impl Catalog {
    /// The built-in catalog.
    pub fn builtin() -> Catalog {
        let mut c = Catalog::default();
        c.extend_from_toml(BUILTIN_TOML).expect("the built-in catalog is valid (tested)");
        c
    }

    /// Adds the entries of a catalog file. Names, GVLKs and activation IDs must be new;
    /// nothing is added unless the whole file is valid.
    pub fn extend_from_toml(&mut self, text: &str) -> Result<(), CatalogError> {
        let file: CatalogFile = toml::from_str(text).map_err(|e| CatalogError::Syntax(crate::toml_error::describe(text, &e)))?;
        let mut next = self.clone();
        for g in file.counted_group {
            if next.counted_groups.iter().any(|x| x.name == g.name || x.kms_counted_id == g.kms_counted_id) {
                return Err(invalid(&g.name, "name", "duplicates an existing counted group (name or kms_counted_id)"));
            }
            next.counted_groups.push(g);
        }
        for h in file.host_key_group {
            if next.host_key_groups.iter().any(|x| x.name == h.name) {
                return Err(invalid(&h.name, "name", "duplicates an existing host key group"));
            }
            next.host_key_groups.push(h);
        }
        for mut p in file.product {
            next.validate_product(&p)?;
            p.kms_counted_id = next.counted_group_by_name(&p.counted_group).map(|g| g.kms_counted_id).unwrap_or_default();
            next.by_activation_id.insert(p.activation_id, next.products.len());
            next.products.push(Arc::new(p));
        }
        *self = next;
        Ok(())
    }

    fn validate_product(&self, p: &Product) -> Result<(), CatalogError> {
        let n = &p.name;
        if n.is_empty() || !n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
            return Err(invalid(n, "name", "must be lowercase letters, digits and dashes"));
        }
        let key = normalize_gvlk(&p.gvlk);
        if key.len() != 25 || !key.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(invalid(n, "gvlk", "must be 25 letters and digits (XXXXX-XXXXX-XXXXX-XXXXX-XXXXX)"));
        }
        if !(1..=1000).contains(&p.required_count) {
            return Err(invalid(n, "required_count", "must be between 1 and 1000"));
        }
        if p.rearm_count.is_some_and(|r| r > 1000) {
            return Err(invalid(n, "rearm_count", "must be between 0 and 1000"));
        }
        if self.counted_group_by_name(&p.counted_group).is_none() {
            return Err(invalid(n, "counted_group", &format!("names no counted group ({:?})", p.counted_group)));
        }
        if p.served_by.is_empty() {
            return Err(invalid(n, "served_by", "must name at least one host key group"));
        }
        if let Some(g) = p.served_by.iter().find(|g| self.host_key_group(g).is_none()) {
            return Err(invalid(n, "served_by", &format!("names unknown host key group {g:?}")));
        }
        if p.activation_id.is_nil() || p.application_id.is_nil() {
            return Err(invalid(n, "activation_id", "and application_id must not be nil"));
        }
        if self.product_by_name(n).is_some() {
            return Err(invalid(n, "name", "duplicates an existing product"));
        }
        if self.product_by_gvlk(&p.gvlk).is_some() {
            return Err(invalid(n, "gvlk", "duplicates an existing product's key"));
        }
        if self.by_activation_id.contains_key(&p.activation_id) {
            return Err(invalid(n, "activation_id", "duplicates an existing product's activation ID"));
        }
        Ok(())
    }

    /// Every product, in catalog order.
    pub fn products(&self) -> &[Arc<Product>] {
        &self.products
    }

    /// Every counted group.
    pub fn counted_groups(&self) -> &[CountedGroup] {
        &self.counted_groups
    }

    /// Every host key group.
    pub fn host_key_groups(&self) -> &[HostKeyGroup] {
        &self.host_key_groups
    }

    /// The product called `name` (e.g. `win7-enterprise`).
    pub fn product_by_name(&self, name: &str) -> Option<&Arc<Product>> {
        self.products.iter().find(|p| p.name.eq_ignore_ascii_case(name))
    }

    /// Why `name` is no product: the nearest product names and where the list is, e.g.
    /// `unknown product "win7-ultimate" (did you mean win7-enterprise? \`kmslab products\`
    /// lists them all)`.
    pub fn unknown_product(&self, name: &str) -> String {
        let typed = name.to_ascii_lowercase();
        let mut near: Vec<(f64, &str)> = self
            .products
            .iter()
            .map(|p| (strsim::jaro_winkler(&typed, &p.name), p.name.as_str()))
            .filter(|(similarity, _)| *similarity >= 0.85)
            .collect();
        near.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
        let near: Vec<&str> = near.into_iter().take(3).map(|(_, n)| n).collect();
        match near.as_slice() {
            [] => format!("unknown product {name:?} (`kmslab products` lists them all)"),
            names => format!("unknown product {name:?} (did you mean {}? `kmslab products` lists them all)", names.join(" or ")),
        }
    }

    /// The product whose GVLK is `key`, ignoring case and dashes.
    pub fn product_by_gvlk(&self, key: &str) -> Option<&Arc<Product>> {
        let k = normalize_gvlk(key);
        self.products.iter().find(|p| normalize_gvlk(&p.gvlk) == k)
    }

    /// The product with activation ID `id`.
    pub fn product_by_activation_id(&self, id: &Uuid) -> Option<&Arc<Product>> {
        self.by_activation_id.get(id).map(|&i| &self.products[i])
    }

    /// The counted group called `name`.
    pub fn counted_group_by_name(&self, name: &str) -> Option<&CountedGroup> {
        self.counted_groups.iter().find(|g| g.name == name)
    }

    /// The counted group with KMS counted ID `id`.
    pub fn counted_group(&self, id: &Uuid) -> Option<&CountedGroup> {
        self.counted_groups.iter().find(|g| &g.kms_counted_id == id)
    }

    /// The host key group called `name`.
    pub fn host_key_group(&self, name: &str) -> Option<&HostKeyGroup> {
        self.host_key_groups.iter().find(|g| g.name == name)
    }
}

fn invalid(entry: &str, field: &'static str, problem: &str) -> CatalogError {
    CatalogError::Invalid { entry: entry.to_owned(), field, problem: problem.to_owned() }
}

#[cfg(test)]
mod unknown_product_tests {
    use super::Catalog;

    #[test]
    fn an_unknown_product_suggests_the_nearest_names() {
        let c = Catalog::builtin();
        assert_eq!(
            c.unknown_product("win7-enterprize"),
            "unknown product \"win7-enterprize\" (did you mean win7-enterprise or win7-enterprise-e or win7-enterprise-n? `kmslab products` lists them all)"
        );
        assert_eq!(c.unknown_product("solitaire"), "unknown product \"solitaire\" (`kmslab products` lists them all)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalog_has_every_product_of_the_reference_with_its_gvlk() {
        let c = Catalog::builtin();
        let expected = [
            ("win7-professional", "FJ82H-XT6CR-J8D7P-XQJJ2-GPDD4", 25),
            ("win7-professional-n", "MRPKT-YTG23-K7D7T-X2JMM-QY7MG", 25),
            ("win7-professional-e", "W82YF-2Q76Y-63HXB-FGJG9-GF7QX", 25),
            ("win7-enterprise", "33PXH-7Y6KF-2VJC9-XBBR8-HVTHH", 25),
            ("win7-enterprise-n", "YDRBP-3D83W-TY26F-D46B2-XCKRJ", 25),
            ("win7-enterprise-e", "C29WB-22CC8-VJ326-GHFJW-H9DH4", 25),
            ("server2008r2-web", "6TPJF-RBVHG-WBW2R-86QPH-6RTM4", 5),
            ("server2008r2-hpc", "TT8MH-CG224-D3D7Q-498W2-9QCTX", 5),
            ("server2008r2-standard", "YC6KT-GKW9T-YTKYR-T4X34-R7VHC", 5),
            ("server2008r2-enterprise", "489J6-VHDMP-X63PK-3K798-CPX3Y", 5),
            ("server2008r2-datacenter", "74YFP-3QFB3-KQT8W-PMXWJ-7M648", 5),
            ("server2008r2-itanium", "GT63C-RJFQ3-4GMB6-BRFB9-CB83V", 5),
            ("office2010-proplus", "VYBBJ-TRJPB-QFQRF-QFT4D-H3GVB", 5),
            ("vista-business", "YFKBB-PQJJV-G996G-VWGXY-2V3X8", 25),
            ("vista-business-n", "HMBQG-8H2RH-C77VX-27R82-VMQBT", 25),
            ("vista-enterprise", "VKK3X-68KWM-X2YGT-QR4M6-4BWMV", 25),
            ("vista-enterprise-n", "VTC42-BM838-43QHV-84HX6-XJXKV", 25),
            ("server2008-web", "WYR28-R7TFJ-3X2YQ-YCY4H-M249D", 5),
            ("server2008-hpc", "RCTX3-KWVHP-BR6TB-RB6DM-6X7HP", 5),
            ("server2008-standard", "TM24T-X9RMF-VWXK6-X8JC9-BFGM2", 5),
            ("server2008-standard-no-hyperv", "W7VD6-7JFBR-RX26B-YKQ3Y-6FFFJ", 5),
            ("server2008-enterprise", "YQGMW-MPWTJ-34KDK-48M3W-X4Q6V", 5),
            ("server2008-enterprise-no-hyperv", "39BXF-X8Q23-P2WWT-38T2F-G3FPG", 5),
            ("server2008-datacenter", "7M67G-PC374-GR742-YH8V4-TCBY3", 5),
            ("server2008-datacenter-no-hyperv", "22XQ2-VRXRG-P8D42-K34TD-G3QQC", 5),
            ("server2008-itanium", "4DWFP-JF3DJ-B7DTH-78FJB-PDRHK", 5),
            ("office2010-standard", "V7QKV-4XVVR-XYV4D-F7DFM-8R6BM", 5),
            ("office2010-project-professional", "YGX6F-PGV49-PGW3J-9BTGG-VHKC6", 5),
            ("office2010-project-standard", "4HP3K-88W3F-W2K3D-6677X-F9PGB", 5),
            ("office2010-visio-premium", "D9DWC-HPYVV-JGF4P-BTWQB-WX8BJ", 5),
            ("office2010-visio-professional", "7MCW8-VRQVK-G677T-PDJCM-Q8TCP", 5),
            ("office2010-visio-standard", "767HD-QGMWX-8QTDB-9G3R2-KHFGJ", 5),
            ("office2010-access", "V7Y44-9T38C-R2VJK-666HK-T7DDX", 5),
            ("office2010-excel", "H62QG-HXVKF-PP4HP-66KMR-CW9BM", 5),
            ("office2010-sharepoint-workspace", "QYYW6-QP4CB-MBV6G-HYMCJ-4T3J4", 5),
            ("office2010-infopath", "K96W8-67RPQ-62T9Y-J8FQJ-BT37T", 5),
            ("office2010-onenote", "Q4Y4M-RHWJM-PY37F-MTKWH-D3XHX", 5),
            ("office2010-outlook", "7YDC2-CWM8M-RRTJC-8MDVC-X3DWQ", 5),
            ("office2010-powerpoint", "RC8FX-88JRY-3PF7C-X8P67-P4VTT", 5),
            ("office2010-publisher", "BFK7F-9MYHM-V68C7-DRQ66-83YTP", 5),
            ("office2010-word", "HVHB3-C6FV7-KQX9W-YQG79-CRY7T", 5),
        ];
        assert_eq!(c.products().len(), expected.len());
        for (name, gvlk, n) in expected {
            let p = c.product_by_name(name).unwrap();
            assert_eq!(p.gvlk, gvlk);
            assert_eq!(p.required_count, n, "{name}");
            assert_eq!(c.product_by_gvlk(gvlk).unwrap().name, name);
            assert_eq!(c.product_by_activation_id(&p.activation_id).unwrap().name, name);
            assert!(!p.kms_counted_id.is_nil());
        }
        let windows = c.counted_group_by_name("windows").unwrap().kms_counted_id;
        let office = c.product_by_name("office2010-proplus").unwrap();
        assert_ne!(office.kms_counted_id, windows, "Office is counted separately");
        assert!(c.products().iter().filter(|p| p.kind != ProductKind::Office).all(|p| p.kms_counted_id == windows));
        assert!(c.products().iter().filter(|p| p.kind == ProductKind::Office).all(|p| p.kms_counted_id == office.kms_counted_id));
    }

    #[test]
    fn each_product_names_its_client_family_and_rearms() {
        let c = Catalog::builtin();
        // (name prefix, family, SRV policy, rearms of a fresh installation)
        let cases = [
            ("win7-", ClientFamily::Windows7, SrvPolicy::PriorityWeight, 3),
            ("server2008r2-", ClientFamily::Windows7, SrvPolicy::PriorityWeight, 3),
            ("vista-business", ClientFamily::Vista, SrvPolicy::IgnorePriorityWeight, 3),
            ("vista-enterprise", ClientFamily::Vista, SrvPolicy::IgnorePriorityWeight, 5),
            ("server2008-", ClientFamily::Vista, SrvPolicy::IgnorePriorityWeight, 3),
            ("office2010-", ClientFamily::Office2010, SrvPolicy::PriorityWeight, 5),
        ];
        for p in c.products() {
            let (_, family, policy, rearms) =
                cases.iter().find(|(prefix, ..)| p.name.starts_with(prefix)).unwrap_or_else(|| panic!("{}", p.name));
            assert_eq!((p.client_family, p.client_family.srv_policy(), p.rearm_count()), (*family, *policy, *rearms), "{}", p.name);
        }
        // Vista and Server 2008 editions show apart from Windows 7 and 2008 R2 in reports.
        let names: std::collections::HashSet<_> = c.products().iter().map(|p| p.display_name.as_str()).collect();
        assert_eq!(names.len(), c.products().len(), "display names are unique");
    }

    #[test]
    fn a_user_product_without_a_family_is_windows_7() {
        let mut c = Catalog::builtin();
        let entry = |name: &str, key: &str, id: &str, extra: &str| {
            format!(
                r#"
                [[product]]
                name = "{name}"
                display_name = "{name}"
                description = "d"
                gvlk = "{key}"
                application_id = "55c92734-d682-4d71-983e-d6ec3f16059f"
                activation_id = "{id}"
                counted_group = "windows"
                required_count = 25
                kind = "client"
                served_by = ["kms-c"]
                id_source = "kmslab"
                {extra}
                "#
            )
        };
        c.extend_from_toml(&entry("lab-old", "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE", "00000000-0000-4000-8000-000000000001", "")).unwrap();
        let p = c.product_by_name("lab-old").unwrap();
        assert_eq!((p.client_family, p.rearm_count()), (ClientFamily::Windows7, 3));
        let vista = entry(
            "lab-vista",
            "AAAAA-BBBBB-CCCCC-DDDDD-FFFFF",
            "00000000-0000-4000-8000-000000000002",
            "client_family = \"vista\"\nrearm_count = 7",
        );
        c.extend_from_toml(&vista).unwrap();
        let p = c.product_by_name("lab-vista").unwrap();
        assert_eq!((p.client_family, p.rearm_count()), (ClientFamily::Vista, 7));
        let e = c
            .extend_from_toml(&entry(
                "lab-x",
                "AAAAA-BBBBB-CCCCC-DDDDD-GGGGG",
                "00000000-0000-4000-8000-000000000003",
                "client_family = \"xp\"",
            ))
            .unwrap_err();
        assert!(e.to_string().contains("client_family") || e.to_string().contains("xp"), "{e}");
        let e = c
            .extend_from_toml(&entry(
                "lab-y",
                "AAAAA-BBBBB-CCCCC-DDDDD-HHHHH",
                "00000000-0000-4000-8000-000000000004",
                "rearm_count = 5000",
            ))
            .unwrap_err();
        assert!(e.to_string().contains("`rearm_count`"), "{e}");
    }

    #[test]
    fn gvlk_lookup_ignores_case_and_dashes() {
        let c = Catalog::builtin();
        for k in ["33pxh7y6kf2vjc9xbbr8hvthh", "33PXH 7Y6KF 2VJC9 XBBR8 HVTHH", "33pxh-7y6kf-2vjc9-xbbr8-hvthh"] {
            assert_eq!(c.product_by_gvlk(k).unwrap().name, "win7-enterprise");
        }
        assert!(c.product_by_gvlk("AAAAA-BBBBB-CCCCC-DDDDD-EEEEE").is_none());
        assert_eq!(c.product_by_name("win7-enterprise").unwrap().partial_key(), "HVTHH");
    }

    #[test]
    fn a_user_file_adds_a_product_without_a_code_change() {
        let mut c = Catalog::builtin();
        c.extend_from_toml(
            r#"
            [[product]]
            name = "lab-widget"
            display_name = "Lab Widget"
            description = "Lab Widget, VOLUME_KMSCLIENT channel"
            gvlk = "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE"
            application_id = "55c92734-d682-4d71-983e-d6ec3f16059f"
            activation_id = "00000000-0000-4000-8000-000000000001"
            counted_group = "windows"
            required_count = 5
            kind = "server"
            served_by = ["kms-c"]
            id_source = "kmslab"
            "#,
        )
        .unwrap();
        assert_eq!(c.product_by_gvlk("aaaaabbbbbcccccdddddeeeee").unwrap().name, "lab-widget");
    }

    #[test]
    fn bad_catalog_files_name_the_entry_and_field() {
        let base = r#"
            [[product]]
            name = "lab-widget"
            display_name = "Lab Widget"
            description = "d"
            gvlk = "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE"
            application_id = "55c92734-d682-4d71-983e-d6ec3f16059f"
            activation_id = "00000000-0000-4000-8000-000000000001"
            counted_group = "windows"
            required_count = 5
            kind = "server"
            served_by = ["kms-c"]
            id_source = "kmslab"
        "#;
        let cases = [
            (base.replace("AAAAA-BBBBB", "AAAA"), "`gvlk`"),
            (base.replace("required_count = 5", "required_count = 5000"), "`required_count`"),
            (base.replace("\"windows\"", "\"nope\""), "`counted_group`"),
            (base.replace("[\"kms-c\"]", "[\"kms-z\"]"), "`served_by`"),
            (base.replace("lab-widget", "win7-enterprise"), "`name`"),
            (base.replace("AAAAA-BBBBB-CCCCC-DDDDD-EEEEE", "33PXH-7Y6KF-2VJC9-XBBR8-HVTHH"), "`gvlk`"),
            (format!("{base}\ncolour = \"blue\""), "colour"),
        ];
        for (text, needle) in cases {
            let mut c = Catalog::builtin();
            let before = c.products().len();
            let e = c.extend_from_toml(&text).unwrap_err().to_string();
            assert!(e.contains(needle), "{e} should mention {needle}");
            assert_eq!(c.products().len(), before, "nothing added from a bad file");
        }
    }
}
