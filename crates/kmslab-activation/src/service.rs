//! The activation service's decisions: which key, whether it may activate, what it costs.
//!
//! Rules (docs/kms-behaviour.md "MAK activation"):
//! - A key the service does not know, or that is not a lab MAK: 0xC004F050. A host key
//!   sent for online activation is not a MAK: 0xC004F050 too.
//! - A blocked MAK (keys file, or blocked through the admin API): 0xC004C003.
//! - A MAK not issued for the installed product: 0xC004C001 (our choice).
//! - An installation ID that is malformed (0xC004F02C), has a wrong check digit
//!   (0xC004F04D), or was not made with the key (0xC004F031).
//! - Every activation of a new installation uses one; the same installation activated
//!   again with the same key uses none; none left: 0xC004C020.
//! - Phone activation (`confirm IID`) finds the key the IID was made with and follows the
//!   same rules.
//! - Genuine validation (`KeyInfo`) answers for MAKs and KMS host keys alike: a blocked
//!   key makes the machine or host that holds it non-genuine (`kmslab_core::genuine`).

use kmslab_core::hresult::HResult;
use kmslab_core::install_id::InstallationId;
use kmslab_core::labkey;
use kmslab_core::wire::{ServiceAnswer, ServiceRequest};
use kmslab_store::StoreError;
use kmslab_store::mak::{MakActivation, MakStore, MakUsage};
use serde::Serialize;

use crate::keys::{HostKey, Keys, MakKey};

/// A refusal: the HRESULT and why, for the error frame or the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The code.
    pub hresult: HResult,
    /// What was wrong, naming the key or ID.
    pub message: String,
}

impl Refusal {
    fn new(hresult: HResult, message: impl Into<String>) -> Refusal {
        Refusal { hresult, message: message.into() }
    }
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Refusal {
        Refusal::new(HResult::STORE_FAILED, format!("activation service state: {e}"))
    }
}

/// A key's state as the admin API and `kmslab activation-service count` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyStatus {
    /// The key.
    pub key: String,
    /// Products it activates.
    pub products: Vec<String>,
    /// Activations granted by the keys file.
    pub granted: u32,
    /// Activations added since.
    pub added: u32,
    /// Activations used.
    pub used: u32,
    /// Activations left.
    pub remaining: u32,
    /// Blocked.
    pub blocked: bool,
    /// `mak`, or `host_key` for a KMS host key (its group in `products`, no counts).
    pub kind: &'static str,
}

/// The service: the keys file and the durable state.
#[derive(Debug)]
pub struct Service {
    keys: Keys,
    store: MakStore,
}

fn remaining(m: &MakKey, u: &MakUsage) -> u32 {
    m.activations.saturating_add(u.added).saturating_sub(u.used)
}

impl Service {
    /// A service over `keys` keeping its state in `store`.
    pub fn new(keys: Keys, store: MakStore) -> Service {
        Service { keys, store }
    }

    /// The keys file.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    fn mak(&self, key: &str) -> Result<&MakKey, Refusal> {
        if let Err(why) = labkey::parse(key) {
            return Err(Refusal::new(HResult::INVALID_PRODUCT_KEY, format!("{key:?} is not a product key: {why}")));
        }
        if let Some(m) = self.keys.mak(key) {
            return Ok(m);
        }
        if self.keys.host_key(key).is_some() {
            return Err(Refusal::new(HResult::INVALID_PRODUCT_KEY, format!("{key} is a KMS host key, not a MAK")));
        }
        Err(Refusal::new(HResult::INVALID_PRODUCT_KEY, format!("{key} is not a key of this activation service")))
    }

    fn blocked(m: &MakKey, u: &MakUsage) -> bool {
        u.blocked.unwrap_or(m.blocked)
    }

    /// The status of the MAK `key`.
    pub fn status(&self, key: &str) -> Result<KeyStatus, Refusal> {
        let m = self.mak(key)?;
        let u = self.store.usage(&m.key)?;
        Ok(KeyStatus {
            key: m.key.clone(),
            products: m.products.clone(),
            granted: m.activations,
            added: u.added,
            used: u.used,
            remaining: remaining(m, &u),
            blocked: Self::blocked(m, &u),
            kind: "mak",
        })
    }

    /// Every MAK's status, in file order.
    pub fn statuses(&self) -> Result<Vec<KeyStatus>, Refusal> {
        self.keys.maks.iter().map(|m| self.status(&m.key)).collect()
    }

    /// Adds `count` activations to `key`.
    pub fn add_activations(&self, key: &str, count: u32) -> Result<KeyStatus, Refusal> {
        let m = self.mak(key)?;
        self.store.add_activations(&m.key, count).map_err(|e| match e {
            StoreError::Invalid(why) => Refusal::new(HResult::INVALID_ARG, why),
            other => other.into(),
        })?;
        self.status(&m.key)
    }

    /// Blocks or unblocks `key` (a MAK or a KMS host key).
    pub fn set_blocked(&self, key: &str, blocked: bool) -> Result<KeyStatus, Refusal> {
        if let Some(h) = self.keys.host_key(key) {
            self.store.set_blocked(&h.key, blocked)?;
            return self.host_key_status(h);
        }
        let m = self.mak(key)?;
        self.store.set_blocked(&m.key, blocked)?;
        self.status(&m.key)
    }

    /// A KMS host key's state: its group as `products`, no counts (a host key's
    /// activations are not counted by this service), blocked or not.
    fn host_key_status(&self, h: &HostKey) -> Result<KeyStatus, Refusal> {
        let u = self.store.usage(&h.key)?;
        Ok(KeyStatus {
            key: h.key.clone(),
            products: vec![h.group.clone()],
            granted: 0,
            added: 0,
            used: 0,
            remaining: 0,
            blocked: u.blocked.unwrap_or(h.blocked),
            kind: "host_key",
        })
    }

    /// Genuine validation of `key` (`KeyInfo` over the wire): a MAK's or a KMS host key's
    /// state. A host key answers with no counts and its blocked flag.
    pub fn key_info(&self, key: &str) -> Result<KeyStatus, Refusal> {
        if let Err(why) = labkey::parse(key) {
            return Err(Refusal::new(HResult::INVALID_PRODUCT_KEY, format!("{key:?} is not a product key: {why}")));
        }
        match self.keys.host_key(key) {
            Some(h) => self.host_key_status(h),
            None => self.status(key),
        }
    }

    fn activate(&self, m: &MakKey, iid: &InstallationId, product: &str, now_ms: i64) -> Result<ServiceAnswer, Refusal> {
        let u = self.store.usage(&m.key)?;
        if Self::blocked(m, &u) {
            return Err(Refusal::new(HResult::MAK_BLOCKED, format!("{} is blocked", m.key)));
        }
        let (usage, counted) = match self.store.activate(&m.key, &iid.digits(), product, m.activations, now_ms)? {
            MakActivation::Counted(u) => (u, true),
            MakActivation::Again(u) => (u, false),
            MakActivation::LimitReached(u) => {
                return Err(Refusal::new(
                    HResult::MAK_LIMIT_EXCEEDED,
                    format!("{} has used all of its {} activations", m.key, m.activations.saturating_add(u.added)),
                ));
            }
        };
        let remaining = remaining(m, &usage);
        tracing::info!(key = %m.key, product, installation_id = %iid, counted, remaining, "activated");
        Ok(ServiceAnswer { confirmation_id: iid.confirmation_id().to_string(), remaining, used: usage.used, blocked: false, counted })
    }

    /// Phone activation: the confirmation ID of `installation_id`.
    pub fn confirm(&self, installation_id: &str, now_ms: i64) -> Result<ServiceAnswer, Refusal> {
        let iid = InstallationId::parse(installation_id).map_err(|(code, why)| Refusal::new(code, why))?;
        let Some(m) = self.keys.maks.iter().find(|m| iid.made_with(&m.key)) else {
            return Err(Refusal::new(
                HResult::INVALID_PRODUCT_KEY,
                format!("installation ID {iid} was made with a key this service does not know"),
            ));
        };
        self.activate(m, &iid, "(phone)", now_ms)
    }

    /// Answers one request of the wire protocol.
    pub fn handle(&self, request: &ServiceRequest, now_ms: i64) -> Result<ServiceAnswer, Refusal> {
        match request {
            ServiceRequest::Activate { key, product, installation_id } => {
                let m = self.mak(key)?;
                let iid = InstallationId::parse(installation_id).map_err(|(code, why)| Refusal::new(code, why))?;
                if !iid.made_with(&m.key) {
                    return Err(Refusal::new(HResult::CID_MISMATCHED, format!("installation ID {iid} was not made with {}", m.key)));
                }
                let u = self.store.usage(&m.key)?;
                if Self::blocked(m, &u) {
                    return Err(Refusal::new(HResult::MAK_BLOCKED, format!("{} is blocked", m.key)));
                }
                if !m.products.iter().any(|p| p == product) {
                    return Err(Refusal::new(
                        HResult::MAK_OUT_OF_RANGE,
                        format!("{} is not valid for {product} (it activates {})", m.key, m.products.join(", ")),
                    ));
                }
                self.activate(m, &iid, product, now_ms)
            }
            ServiceRequest::Confirm { installation_id } => self.confirm(installation_id, now_ms),
            ServiceRequest::KeyInfo { key } => {
                let s = self.key_info(key)?;
                Ok(ServiceAnswer {
                    confirmation_id: String::new(),
                    remaining: s.remaining,
                    used: s.used,
                    blocked: s.blocked,
                    counted: false,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{MakSpec, generate};
    use kmslab_core::install_id::installation_id;
    use uuid::Uuid;

    fn service(dir: &std::path::Path, count: u32) -> (Service, String) {
        let keys = generate(&[MakSpec { product: "win7-enterprise".into(), activations: count }]);
        let key = keys.maks[0].key.clone();
        (Service::new(keys, MakStore::open(&dir.join("a.sqlite")).unwrap()), key)
    }

    fn activate(s: &Service, key: &str, product: &str, machine: u128) -> Result<ServiceAnswer, Refusal> {
        let iid = installation_id(key, Uuid::from_u128(machine)).to_string();
        s.handle(&ServiceRequest::Activate { key: key.into(), product: product.into(), installation_id: iid }, 0)
    }

    #[test]
    fn counts_refusals_and_free_reactivation() {
        let dir = tempfile::tempdir().unwrap();
        let (s, key) = service(dir.path(), 2);
        let a = activate(&s, &key, "win7-enterprise", 1).unwrap();
        assert_eq!((a.remaining, a.used, a.counted), (1, 1, true));
        assert_eq!(a.confirmation_id, installation_id(&key, Uuid::from_u128(1)).confirmation_id().to_string());
        let again = activate(&s, &key, "win7-enterprise", 1).unwrap();
        assert_eq!((again.remaining, again.counted), (1, false));
        assert_eq!(activate(&s, &key, "win7-professional", 2).unwrap_err().hresult, HResult::MAK_OUT_OF_RANGE);
        activate(&s, &key, "win7-enterprise", 2).unwrap();
        assert_eq!(activate(&s, &key, "win7-enterprise", 3).unwrap_err().hresult, HResult::MAK_LIMIT_EXCEEDED);
        assert_eq!(s.add_activations(&key, 1).unwrap().remaining, 1);
        // Phone activation of machine 3 uses the added one.
        let iid = installation_id(&key, Uuid::from_u128(3)).to_string();
        assert_eq!(s.confirm(&iid, 0).unwrap().remaining, 0);
        s.set_blocked(&key, true).unwrap();
        assert_eq!(activate(&s, &key, "win7-enterprise", 1).unwrap_err().hresult, HResult::MAK_BLOCKED);
        let other = generate(&[MakSpec { product: "win7-enterprise".into(), activations: 1 }]).maks[0].key.clone();
        let e = activate(&s, &other, "win7-enterprise", 1).unwrap_err();
        assert_eq!(e.hresult, HResult::INVALID_PRODUCT_KEY);
        assert!(e.message.contains(&other), "{}", e.message);
        let wrong_iid = installation_id(&other, Uuid::from_u128(1)).to_string();
        let e = s.handle(&ServiceRequest::Activate { key: key.clone(), product: "win7-enterprise".into(), installation_id: wrong_iid }, 0);
        assert_eq!(e.unwrap_err().hresult, HResult::CID_MISMATCHED);
        assert_eq!(s.confirm("12345", 0).unwrap_err().hresult, HResult::CID_INVALID_DATA);
    }

    #[test]
    fn host_keys_validate_and_can_be_blocked() {
        let dir = tempfile::tempdir().unwrap();
        let mut keys = generate(&[]);
        let host_key = labkey::generate(labkey::LabKeyKind::HostKey, &[7u8; 20]);
        keys.host_keys.push(HostKey { key: host_key.clone(), group: "kms-b".into(), blocked: false });
        let s = Service::new(keys, MakStore::open(&dir.path().join("a.sqlite")).unwrap());
        let info = |s: &Service| s.handle(&ServiceRequest::KeyInfo { key: host_key.to_lowercase() }, 0);
        assert!(!info(&s).unwrap().blocked);
        let status = s.set_blocked(&host_key, true).unwrap();
        assert_eq!((status.products, status.blocked), (vec!["kms-b".to_owned()], true));
        assert!(info(&s).unwrap().blocked);
        assert!(!s.set_blocked(&host_key, false).unwrap().blocked);
        // A host key is still no MAK for online activation.
        let iid = installation_id(&host_key, Uuid::from_u128(1)).to_string();
        let e = s.handle(&ServiceRequest::Activate { key: host_key.clone(), product: "win7-enterprise".into(), installation_id: iid }, 0);
        assert_eq!(e.unwrap_err().hresult, HResult::INVALID_PRODUCT_KEY);
        let unknown = labkey::generate(labkey::LabKeyKind::HostKey, &[9u8; 20]);
        assert_eq!(s.handle(&ServiceRequest::KeyInfo { key: unknown }, 0).unwrap_err().hresult, HResult::INVALID_PRODUCT_KEY);
    }
}
