//! CIL files of `kmslab vamt`: the computers VAMT manages, with each one's product, key,
//! status, installation ID and confirmation ID, as XML (docs/vamt.md has the structure).
//!
//! The tag names follow what VAMT 2.0 documents (`SoftwareLicensingData@Version`,
//! `Computers/Computer` with `Name`, `OSEdition`, `NetworkType`, `NetworkName`, `Id`,
//! `Products/Product/Sku` with `Id`, `Name`, `ApplicationId`); VAMT 1.2's own schema is not
//! published, so the rest is kmslab's. A secure export (`--no-pii`) drops the name, the
//! edition and the network (`NetworkType="None"`); [`Cil::import`] merges a file back by
//! computer `Id` (the CMID), so the confirmation IDs find their machines again.

use serde::{Deserialize, Serialize};

/// The version kmslab writes.
pub const VERSION: &str = "1.2-kmslab";

/// A whole CIL file.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename = "SoftwareLicensingData")]
pub struct Cil {
    /// `Version` attribute.
    #[serde(rename = "@Version")]
    pub version: String,
    /// The computers.
    #[serde(rename = "Computers", default)]
    pub computers: Computers,
}

/// The `Computers` element.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Computers {
    /// One per machine.
    #[serde(rename = "Computer", default)]
    pub list: Vec<Computer>,
}

/// One managed machine.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Computer {
    /// The machine's CMID (VAMT's computer GUID).
    #[serde(rename = "@Id")]
    pub id: String,
    /// Machine name (dropped by a secure export).
    #[serde(rename = "@Name", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Product name (dropped by a secure export).
    #[serde(rename = "@OSEdition", default, skip_serializing_if = "Option::is_none")]
    pub os_edition: Option<String>,
    /// `Workgroup`, or `None` in a secure export.
    #[serde(rename = "@NetworkType")]
    pub network_type: String,
    /// The kms-client control API address VAMT reaches the machine at (dropped by a
    /// secure export).
    #[serde(rename = "@NetworkName", default, skip_serializing_if = "Option::is_none")]
    pub network_name: Option<String>,
    /// The installed product.
    #[serde(rename = "Products", default)]
    pub products: Products,
}

/// The `Products` element.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Products {
    /// The products (kms-client runs one).
    #[serde(rename = "Product", default)]
    pub list: Vec<Product>,
}

/// One product of a computer.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Product {
    /// Its SKU.
    #[serde(rename = "Sku")]
    pub sku: Sku,
    /// `VOLUME_MAK` or `VOLUME_KMSCLIENT`.
    #[serde(rename = "Channel", default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Last five characters of the installed key.
    #[serde(rename = "PartialProductKey", default, skip_serializing_if = "Option::is_none")]
    pub partial_key: Option<String>,
    /// License status key (`licensed`, `initial_grace`, ...).
    #[serde(rename = "LicenseStatus", default, skip_serializing_if = "Option::is_none")]
    pub license_status: Option<String>,
    /// The installation ID (for proxy activation).
    #[serde(rename = "InstallationId", default, skip_serializing_if = "Option::is_none")]
    pub installation_id: Option<String>,
    /// The confirmation ID acquired for it, not yet applied or applied.
    #[serde(rename = "ConfirmationId", default, skip_serializing_if = "Option::is_none")]
    pub confirmation_id: Option<String>,
}

/// A product SKU.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Sku {
    /// Activation ID.
    #[serde(rename = "@Id")]
    pub id: String,
    /// Display name (dropped by a secure export).
    #[serde(rename = "@Name", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Application ID.
    #[serde(rename = "@ApplicationId")]
    pub application_id: String,
}

impl Cil {
    /// An empty CIL.
    pub fn new() -> Cil {
        Cil { version: VERSION.into(), computers: Computers::default() }
    }

    /// Reads a CIL file's text.
    pub fn parse(text: &str) -> Result<Cil, String> {
        quick_xml::de::from_str(text).map_err(|e| format!("not a CIL file: {e}"))
    }

    /// The file text.
    pub fn to_xml(&self) -> String {
        let body = quick_xml::se::to_string(self).expect("plain data serializes");
        format!("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n{body}\n")
    }

    /// The computer with `id`, if known.
    pub fn computer_mut(&mut self, id: &str) -> Option<&mut Computer> {
        self.computers.list.iter_mut().find(|c| c.id.eq_ignore_ascii_case(id))
    }

    /// Adds `computer`, or replaces what is known of the computer with its `Id`, keeping
    /// an acquired confirmation ID the new data lacks.
    pub fn upsert(&mut self, computer: Computer) {
        match self.computer_mut(&computer.id) {
            Some(old) => {
                let kept = old.products.list.first().and_then(|p| p.confirmation_id.clone());
                *old = computer;
                if let (Some(cid), Some(p)) = (kept, old.products.list.first_mut())
                    && p.confirmation_id.is_none()
                {
                    p.confirmation_id = Some(cid);
                }
            }
            None => self.computers.list.push(computer),
        }
    }

    /// A copy for another VAMT host; `no_pii` drops names, editions and networks.
    pub fn export(&self, no_pii: bool) -> Cil {
        let mut out = self.clone();
        if no_pii {
            for c in &mut out.computers.list {
                c.name = None;
                c.os_edition = None;
                c.network_name = None;
                c.network_type = "None".into();
                for p in &mut c.products.list {
                    p.sku.name = None;
                }
            }
        }
        out
    }

    /// Merges `other`'s confirmation IDs into this CIL by computer `Id` (and installation
    /// ID); returns how many were taken and the ids `other` has that this CIL does not.
    pub fn import(&mut self, other: &Cil) -> (usize, Vec<String>) {
        let mut taken = 0;
        let mut unknown = Vec::new();
        for theirs in &other.computers.list {
            let Some(mine) = self.computer_mut(&theirs.id) else {
                unknown.push(theirs.id.clone());
                continue;
            };
            for (p, q) in mine.products.list.iter_mut().zip(&theirs.products.list) {
                if q.confirmation_id.is_some() && q.installation_id == p.installation_id && p.confirmation_id != q.confirmation_id {
                    p.confirmation_id = q.confirmation_id.clone();
                    taken += 1;
                }
            }
        }
        (taken, unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn computer(id: &str, iid: &str) -> Computer {
        Computer {
            id: id.into(),
            name: Some("WS-1".into()),
            os_edition: Some("win7-enterprise".into()),
            network_type: "Workgroup".into(),
            network_name: Some("127.0.0.1:8689".into()),
            products: Products {
                list: vec![Product {
                    sku: Sku { id: "ae2ee509".into(), name: Some("Windows 7 <Enterprise> & co".into()), application_id: "55c92734".into() },
                    channel: Some("VOLUME_MAK".into()),
                    partial_key: Some("98MBH".into()),
                    license_status: Some("initial_grace".into()),
                    installation_id: Some(iid.into()),
                    confirmation_id: None,
                }],
            },
        }
    }

    #[test]
    fn round_trip_secure_export_and_merge_back() {
        let mut cil = Cil::new();
        cil.upsert(computer("c1", "111"));
        cil.upsert(computer("c2", "222"));
        let xml = cil.to_xml();
        assert!(xml.contains("<SoftwareLicensingData Version=\"1.2-kmslab\">") && xml.contains("&lt;Enterprise&gt; &amp; co"), "{xml}");
        assert_eq!(Cil::parse(&xml).unwrap(), cil);

        let mut outside = Cil::parse(&cil.export(true).to_xml()).unwrap();
        let c = &outside.computers.list[0];
        assert_eq!((c.name.as_ref(), c.network_name.as_ref(), c.network_type.as_str()), (None, None, "None"));
        outside.computers.list[0].products.list[0].confirmation_id = Some("cid-1".into());
        outside.computers.list.push(computer("c9", "999"));
        let (taken, unknown) = cil.import(&outside);
        assert_eq!((taken, unknown), (1, vec!["c9".to_owned()]));
        assert_eq!(cil.computers.list[0].products.list[0].confirmation_id.as_deref(), Some("cid-1"));
        assert_eq!(cil.computers.list[0].network_name.as_deref(), Some("127.0.0.1:8689"), "the inside copy keeps its addresses");
        // A refreshed status keeps the acquired CID.
        cil.upsert(computer("c1", "111"));
        assert_eq!(cil.computers.list[0].products.list[0].confirmation_id.as_deref(), Some("cid-1"));
        assert!(Cil::parse("<html/>").is_err());
    }
}
