//! The MAK drills (docs/operations.md "MAK troubleshooting"): the simulated activation
//! service (`kmslab_activation`, its SQLite state in a temporary directory) and real
//! kms-client daemons (`kmslab_client::run`), all in this process on loopback port 0 and
//! on the drill's clock. The drill drives each machine through its control API as slmgr
//! does (`/ipk`, `/ato`, `/dti`, `/atp`, `/dli`, `/xpr`) and the service through its admin
//! API as `kmslab activation-service add` and `kmslab vamt` do.

use anyhow::Context as _;
use kmslab_activation::cil::Cil;
use kmslab_core::HResult;
use kmslab_core::catalog::Catalog;
use kmslab_core::hostaddr::HostAddr;
use kmslab_runtime::config::Parsed;
use serde_json::{Value, json};
use std::net::{Ipv4Addr, SocketAddr};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Transcript;
use super::lab::{LabHost, LabTime, http_get_json, http_post_json};
use crate::engine::Target;

const WIN7: &str = "win7-enterprise";

/// The lab's activation service ("Microsoft's hosted service"), in process.
pub struct LabService {
    /// Its wire protocol listener (`kms-client --activation-service`).
    pub activation: SocketAddr,
    /// Its admin API (`kmslab activation-service --target`, `kmslab vamt --service`).
    pub admin: SocketAddr,
    /// The MAKs it knows, in the order asked for.
    pub maks: Vec<String>,
    /// The KMS host keys it knows, in the order asked for.
    pub host_keys: Vec<String>,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl LabService {
    /// Starts a service with one MAK per `(product, activations)`.
    pub async fn start(maks: &[(&str, u32)]) -> anyhow::Result<LabService> {
        LabService::start_with(maks, &[]).await
    }

    /// Starts a service with one MAK per `(product, activations)` and one KMS host key per
    /// host key group in `host_keys`.
    pub async fn start_with(maks: &[(&str, u32)], host_keys: &[&str]) -> anyhow::Result<LabService> {
        let dir = tempfile::tempdir().context("temporary data directory")?;
        let catalog = Catalog::builtin();
        let specs: Vec<_> = maks
            .iter()
            .map(|(p, n)| kmslab_activation::MakSpec::parse(&format!("{p}={n}"), &catalog).map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<_>>()?;
        let mut keys = kmslab_activation::keys::generate(&specs);
        for group in host_keys {
            keys.host_keys.push(kmslab_activation::keys::generate_host_key(group, &catalog).map_err(anyhow::Error::msg)?);
        }
        let keys_path = dir.path().join("keys.toml");
        std::fs::write(&keys_path, keys.to_toml())?;
        let service = kmslab_activation::start(&keys_path, &dir.path().join("data"), &catalog)?;
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let admin = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let (activation, admin_addr) = (listener.local_addr()?, admin.local_addr()?);
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let task = tokio::spawn(async move {
            if let Err(e) = kmslab_activation::run(service, listener, Some(admin), token).await {
                tracing::error!(error = %e, "lab activation service stopped");
            }
        });
        let maks = keys.maks.iter().map(|m| m.key.clone()).collect();
        let host_keys = keys.host_keys.iter().map(|h| h.key.clone()).collect();
        Ok(LabService { activation, admin: admin_addr, maks, host_keys, shutdown, task, _dir: dir })
    }

    /// `kmslab activation-service count KEY` as a line.
    pub async fn count_line(&self, key: &str) -> String {
        match http_get_json(self.admin, &format!("/api/v1/keys/{key}")).await {
            Ok(k) => format!(
                "{key} remaining {} used {} of {}{}",
                k["remaining"],
                k["used"],
                k["granted"].as_u64().unwrap_or(0) + k["added"].as_u64().unwrap_or(0),
                if k["blocked"] == true { " blocked" } else { "" }
            ),
            Err(e) => format!("(no answer from the service's admin API: {e})"),
        }
    }

    /// The key's remaining activations.
    pub async fn remaining(&self, key: &str) -> Option<u64> {
        http_get_json(self.admin, &format!("/api/v1/keys/{key}")).await.ok().and_then(|k| k["remaining"].as_u64())
    }

    /// `kmslab activation-service add KEY COUNT` (the Activation Center adds activations).
    pub async fn add(&self, key: &str, count: u32) -> anyhow::Result<()> {
        let (status, body) = http_post_json(self.admin, &format!("/api/v1/keys/{key}/add"), &json!({ "count": count })).await?;
        anyhow::ensure!(status == 200, "add: HTTP {status}: {body}");
        Ok(())
    }

    /// `kmslab activation-service block KEY` (a leaked key).
    pub async fn block(&self, key: &str) -> anyhow::Result<()> {
        let (status, body) = http_post_json(self.admin, &format!("/api/v1/keys/{key}/block"), &json!({})).await?;
        anyhow::ensure!(status == 200 && body["blocked"] == true, "block: HTTP {status}: {body}");
        Ok(())
    }

    /// Stops it.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}

/// One kms-client daemon in process: a Windows 7 Enterprise machine.
pub struct LabMachine {
    /// Its machine name.
    pub name: String,
    /// Its control API (the slmgr target).
    pub admin: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

/// How a [`LabMachine`] starts.
#[derive(Default)]
pub struct MachineSetup {
    /// `--kms` (None: a port nobody listens on, so KMS attempts fail fast).
    pub kms: Option<HostAddr>,
    /// `--activation-service` (None: the machine cannot reach the service).
    pub service: Option<SocketAddr>,
    /// `--slic-without-marker`.
    pub slic_without_marker: bool,
}

impl LabMachine {
    /// Starts a machine named `name`.
    pub async fn start(name: &str, time: LabTime, setup: MachineSetup) -> anyhow::Result<LabMachine> {
        let args = kmslab_client::Args {
            product: Some(WIN7.into()),
            kms: Some(Parsed(setup.kms.unwrap_or_else(|| HostAddr::new("127.0.0.1", 9)))),
            machine_name: Some(Parsed(name.parse().map_err(|e| anyhow::anyhow!("{name}: {e}"))?)),
            activation_service: setup
                .service
                .map(|s| s.to_string().parse().map(Parsed))
                .transpose()
                .map_err(|e| anyhow::anyhow!("{name}: {e}"))?,
            slic_without_marker: setup.slic_without_marker,
            admin: Some(Parsed(kmslab_runtime::config::Addr((Ipv4Addr::LOCALHOST, 0).into()))),
            ..Default::default()
        };
        let mut config = kmslab_client::ClientConfig::from_args(args).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        config.time_scale = time.scale;
        config.time_origin = Some(time.origin);
        let admin = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = admin.local_addr()?;
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let owned = name.to_owned();
        let task = tokio::spawn(async move {
            if let Err(e) = kmslab_client::run(config, admin, token).await {
                tracing::error!(machine = %owned, error = %e, "lab machine stopped");
            }
        });
        Ok(LabMachine { name: name.to_owned(), admin: addr, shutdown, task })
    }

    /// `GET /api/v1/status`.
    pub async fn status(&self) -> Value {
        http_get_json(self.admin, "/api/v1/status").await.unwrap_or(Value::Null)
    }

    /// `slmgr /ipk KEY`: the HTTP status and the answer.
    pub async fn ipk(&self, key: &str) -> anyhow::Result<(u16, Value)> {
        http_post_json(self.admin, "/api/v1/ipk", &json!({ "key": key })).await
    }

    /// `slmgr /ato`: the attempt's answer (`hresult`, `name`, `meaning`).
    pub async fn ato(&self) -> anyhow::Result<Value> {
        let (status, body) = http_post_json(self.admin, "/api/v1/ato", &json!({})).await?;
        anyhow::ensure!(status == 200, "{}: /ato: HTTP {status}: {body}", self.name);
        Ok(body)
    }

    /// `slmgr /dli` lines, from slmgr's own renderer.
    pub async fn dli_lines(&self) -> Vec<String> {
        match serde_json::from_value::<kmslab_api::ClientStatus>(self.status().await) {
            Ok(s) => kmslab_api::render::client_dli_lines(&s, false, false),
            Err(e) => vec![format!("(no client status: {e})")],
        }
    }

    /// `slmgr /xpr` lines.
    pub async fn xpr_lines(&self) -> Vec<String> {
        match serde_json::from_value::<kmslab_api::ClientStatus>(self.status().await) {
            Ok(s) => match kmslab_api::render::client_xpr(&s, false) {
                Ok(text) | Err(text) => text.lines().map(str::to_owned).collect(),
            },
            Err(e) => vec![format!("(no client status: {e})")],
        }
    }

    /// Stops it.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}

/// What slmgr prints for an `/ato` answer.
pub(super) fn ato_line(machine: &str, r: &Value) -> String {
    let code = r["hresult"].as_str().unwrap_or("?");
    if code == "0x00000000" {
        format!("  slmgr /ato on {machine}: Product activated successfully.")
    } else {
        format!(
            "  slmgr /ato on {machine}: Error: {code} {}: {}",
            r["name"].as_str().unwrap_or(""),
            r["meaning"].as_str().unwrap_or("Product activation failed.")
        )
    }
}

/// What slmgr prints for an `/ipk` answer.
pub(super) fn ipk_line(machine: &str, key: &str, code: u16, body: &Value) -> String {
    if code == 200 {
        format!("  slmgr /ipk on {machine}: Installed product key {key} successfully.")
    } else {
        format!("  slmgr /ipk on {machine}: Error: {} {}", body["hresult"].as_str().unwrap_or("?"), body["error"].as_str().unwrap_or(""))
    }
}

pub(super) fn is(r: &Value, code: HResult) -> bool {
    r["hresult"].as_str() == Some(code.to_string().as_str())
}

/// The fleet-shaped summary of the drill's machines.
async fn summary(t: &mut Transcript, machines: &[&LabMachine], errors: &[(HResult, u64)]) {
    let mut licensed = 0;
    let mut grace = 0;
    for m in machines {
        match m.status().await["status"].as_str() {
            Some("licensed") => licensed += 1,
            Some("initial_grace") => grace += 1,
            _ => {}
        }
    }
    let mut e = serde_json::Map::new();
    for (code, n) in errors {
        e.insert(code.to_string(), json!(n));
    }
    t.summaries.push(json!({"clients": machines.len(), "licensed": licensed, "initial_grace": grace, "errors": e}));
}

/// A rollout outgrows its MAK: 0xC004C020 until the Activation Center adds activations.
pub(crate) async fn mak_exhausted(t: &mut Transcript, time: LabTime) -> anyhow::Result<()> {
    const MACHINES: usize = 6;
    const GRANTED: u32 = 4;
    let svc = LabService::start(&[(WIN7, GRANTED)]).await?;
    let mak = svc.maks[0].clone();
    t.say(format!("  MAK {mak} for {WIN7} with {GRANTED} activations; {MACHINES} machines to roll out"));
    let mut machines = Vec::new();
    for i in 1..=MACHINES {
        machines.push(
            LabMachine::start(&format!("PC-{i:02}"), time, MachineSetup { service: Some(svc.activation), ..Default::default() }).await?,
        );
    }
    t.section(format!("Rollout: slmgr /ipk {mak}, slmgr /ato on each machine"));
    let mut results = Vec::new();
    for m in &machines {
        let (code, body) = m.ipk(&mak).await?;
        t.say(ipk_line(&m.name, &mak, code, &body));
        t.check(code == 200, format!("/ipk accepted on {}", m.name));
        let r = m.ato().await?;
        t.say(ato_line(&m.name, &r));
        results.push(r);
    }
    t.section("Symptom");
    let failed: Vec<usize> = (0..MACHINES).filter(|&i| !is(&results[i], HResult::SUCCESS)).collect();
    let exhausted = failed.iter().all(|&i| is(&results[i], HResult::MAK_LIMIT_EXCEEDED));
    t.say(format!("  slmgr /dli on {}:", machines[MACHINES - 1].name));
    t.block(&machines[MACHINES - 1].dli_lines().await);
    t.say("  kmslab activation-service count:");
    t.block(&[svc.count_line(&mak).await]);
    t.check(
        (0..GRANTED as usize).all(|i| is(&results[i], HResult::SUCCESS)),
        format!("the first {GRANTED} machines activate, one activation each"),
    );
    t.check(
        failed.len() == MACHINES - GRANTED as usize && exhausted,
        format!("the other {} fail with 0xC004C020 SL_E_CHPA_DMAK_LIMIT_EXCEEDED", MACHINES - GRANTED as usize),
    );
    t.check(svc.remaining(&mak).await == Some(0), "the MAK has 0 activations left");
    let still_grace = {
        let mut ok = true;
        for &i in &failed {
            ok &= machines[i].status().await["status"] == "initial_grace";
        }
        ok
    };
    t.check(still_grace, "the machines that failed stay in their initial grace period");
    t.section(format!("Fix: ask the Activation Center for more: kmslab activation-service add {mak} 5; slmgr /ato on the rest"));
    svc.add(&mak, 5).await?;
    t.block(&[svc.count_line(&mak).await]);
    let mut all = true;
    for &i in &failed {
        let r = machines[i].ato().await?;
        t.say(ato_line(&machines[i].name, &r));
        all &= is(&r, HResult::SUCCESS);
    }
    t.section("Outcome");
    t.say(format!("  slmgr /xpr on {}:", machines[MACHINES - 1].name));
    t.block(&machines[MACHINES - 1].xpr_lines().await);
    t.block(&[svc.count_line(&mak).await]);
    // Activating again (same installation, same hardware) costs nothing.
    let again = machines[0].ato().await?;
    t.check(all, "the rest of the rollout activates");
    t.check(is(&again, HResult::SUCCESS) && svc.remaining(&mak).await == Some(3), "6 of 9 used, 3 left; a repeat /ato costs nothing");
    let refs: Vec<&LabMachine> = machines.iter().collect();
    summary(t, &refs, &[(HResult::MAK_LIMIT_EXCEEDED, failed.len() as u64)]).await;
    for m in machines {
        m.stop().await;
    }
    svc.stop().await;
    Ok(())
}

/// An OEM box whose SLIC table has no Windows marker: KMS refuses, a MAK works.
pub(crate) async fn oem_marker(t: &mut Transcript, time: LabTime) -> anyhow::Result<()> {
    let svc = LabService::start(&[(WIN7, 1)]).await?;
    let mak = svc.maks[0].clone();
    let host = LabHost::start("kms1", time, |_| {}).await?;
    t.say("  OEM-01: an OEM machine (ACPI_SLIC without a Windows marker) installed from volume media: a KMS client");
    let m = LabMachine::start(
        "OEM-01",
        time,
        MachineSetup { kms: Some(host.ip_addr()), service: Some(svc.activation), slic_without_marker: true },
    )
    .await?;
    t.section("Symptom");
    let r = m.ato().await?;
    let refused = u64::from(is(&r, HResult::VL_NOT_WINDOWS_SLP));
    t.say(ato_line(&m.name, &r));
    t.say(format!("  slmgr /dli on {}:", m.name));
    t.block(&m.dli_lines().await);
    t.check(is(&r, HResult::VL_NOT_WINDOWS_SLP), "KMS activation fails with 0xC004F035 SL_E_VL_NOT_WINDOWS_SLP");
    t.check(
        r["meaning"].as_str().is_some_and(|s| s.contains("could not be activated with a Volume license product key")),
        "its text: the computer could not be activated with a Volume license product key",
    );
    t.check(m.status().await["status"] == "initial_grace", "the machine stays in its grace period");
    t.section(format!("Fix: a MAK (or retail key) instead of the GVLK: slmgr /ipk {mak}, slmgr /ato"));
    let (code, body) = m.ipk(&mak).await?;
    t.say(ipk_line(&m.name, &mak, code, &body));
    let r = m.ato().await?;
    t.say(ato_line(&m.name, &r));
    t.section("Outcome");
    t.say(format!("  slmgr /dli on {}:", m.name));
    t.block(&m.dli_lines().await);
    t.say(format!("  slmgr /xpr on {}:", m.name));
    let xpr = m.xpr_lines().await;
    t.block(&xpr);
    t.block(&[svc.count_line(&mak).await]);
    let s = m.status().await;
    t.check(code == 200 && is(&r, HResult::SUCCESS), "the MAK activates it online");
    t.check(
        s["status"] == "licensed" && s["channel"] == "VOLUME_MAK" && xpr.iter().any(|l| l.contains("permanently activated")),
        "Licensed on the VOLUME_MAK channel, permanently activated",
    );
    summary(t, &[&m], &[(HResult::VL_NOT_WINDOWS_SLP, refused)]).await;
    m.stop().await;
    host.stop().await;
    svc.stop().await;
    Ok(())
}

/// A KMS client leaves the network for good: MAK; back on the network: GVLK and KMS again.
pub(crate) async fn kms_to_mak(t: &mut Transcript, time: LabTime) -> anyhow::Result<()> {
    let svc = LabService::start(&[(WIN7, 1)]).await?;
    let mak = svc.maks[0].clone();
    let host = LabHost::start("kms1", time, |_| {}).await?;
    // 24 other Windows 7 machines on the network bring the host's count to 25 with the laptop.
    let office = super::scenarios::fleet(time, 24, WIN7, Target::Manual(host.ip_addr()), "OFFICE", |_| {});
    let _ = super::wait_for(&office, |ms| ms.iter().all(|m| m.last_result.is_some())).await;
    let laptop = LabMachine::start(
        "LAPTOP-01",
        time,
        MachineSetup { kms: Some(host.ip_addr()), service: Some(svc.activation), ..Default::default() },
    )
    .await?;
    t.section("On the network: LAPTOP-01 and 24 other Windows 7 machines, KMS clients of kms1");
    let first = laptop.ato().await?;
    t.say(ato_line(&laptop.name, &first));
    office.activate_now(0..24);
    let r = if is(&first, HResult::SUCCESS) { first } else { laptop.ato().await? };
    t.say(format!("  slmgr /xpr on {}:", laptop.name));
    t.block(&laptop.xpr_lines().await);
    t.check(is(&r, HResult::SUCCESS), "the laptop is a KMS client activated by kms1 (count 25)");
    t.section("The laptop leaves the network for good: it would fall out of KMS activation after 180 days");
    t.section(format!("Convert to MAK: slmgr /ipk {mak}, slmgr /ato"));
    let (code, body) = laptop.ipk(&mak).await?;
    t.say(ipk_line(&laptop.name, &mak, code, &body));
    let r = laptop.ato().await?;
    t.say(ato_line(&laptop.name, &r));
    t.say(format!("  slmgr /dli on {}:", laptop.name));
    let dli = laptop.dli_lines().await;
    t.block(&dli);
    t.say(format!("  slmgr /xpr on {}:", laptop.name));
    let xpr = laptop.xpr_lines().await;
    t.block(&xpr);
    t.block(&[svc.count_line(&mak).await]);
    let s = laptop.status().await;
    t.check(code == 200 && is(&r, HResult::SUCCESS), "the MAK activates online, one activation used");
    t.check(dli.iter().any(|l| l.contains("VOLUME_MAK channel")), "/dli: Description ends VOLUME_MAK channel");
    t.check(
        xpr.iter().any(|l| l.contains("The machine is permanently activated.")) && s["valid_until"].is_null(),
        "/xpr: The machine is permanently activated. (no expiry, no renewal)",
    );
    t.section(format!("Back on the network: a KMS client again: slmgr /ipk {}, slmgr /ato", gvlk()));
    let (code, body) = laptop.ipk(&gvlk()).await?;
    t.say(ipk_line(&laptop.name, &gvlk(), code, &body));
    let r = laptop.ato().await?;
    t.say(ato_line(&laptop.name, &r));
    t.section("Outcome");
    t.say(format!("  slmgr /dli on {}:", laptop.name));
    let dli = laptop.dli_lines().await;
    t.block(&dli);
    t.say(format!("  slmgr /xpr on {}:", laptop.name));
    let xpr = laptop.xpr_lines().await;
    t.block(&xpr);
    let s = laptop.status().await;
    t.check(
        code == 200 && is(&r, HResult::SUCCESS) && s["channel"] == "VOLUME_KMSCLIENT",
        "the GVLK makes it a KMS client; kms1 activates it again",
    );
    t.check(
        s["status"] == "licensed" && s["permanently_activated"] == false && xpr.iter().any(|l| l.contains("Volume activation will expire")),
        "/xpr: Volume activation will expire ... (180 days, renewed by KMS)",
    );
    summary(t, &[&laptop], &[]).await;
    t.stop(office).await;
    laptop.stop().await;
    host.stop().await;
    svc.stop().await;
    Ok(())
}

fn gvlk() -> String {
    Catalog::builtin().product_by_name(WIN7).map(|p| p.gvlk.clone()).unwrap_or_default()
}

/// An isolated network activated by carrying a CIL file to a host that reaches the service.
pub(crate) async fn proxy_offline(t: &mut Transcript, time: LabTime) -> anyhow::Result<()> {
    let svc = LabService::start(&[(WIN7, 3)]).await?;
    let mak = svc.maks[0].clone();
    let dir = tempfile::tempdir()?;
    let (inside, carried) = (dir.path().join("inside.cil"), dir.path().join("carried.cil"));
    let mut machines = Vec::new();
    for i in 1..=2 {
        machines.push(LabMachine::start(&format!("ISO-{i:02}"), time, MachineSetup::default()).await?);
    }
    let addrs: Vec<String> = machines.iter().map(|m| m.admin.to_string()).collect();
    t.say("  ISO-01, ISO-02: an isolated network; neither machine reaches the activation service");
    t.section("Symptom");
    let (code, body) = machines[0].ipk(&mak).await?;
    t.say(ipk_line(&machines[0].name, &mak, code, &body));
    let r = machines[0].ato().await?;
    let unreachable = u64::from(is(&r, HResult::HOST_UNREACHABLE));
    t.say(ato_line(&machines[0].name, &r));
    t.check(is(&r, HResult::HOST_UNREACHABLE), "online activation fails: 0x800706BA (no route to the service)");
    t.section("Inside: kmslab vamt discover, install-key, export --no-pii to removable media");
    let v = vamt(&inside, vec!["discover".into(), addrs[0].clone(), addrs[1].clone()]).await?;
    t.block(&v.1);
    let v = vamt(&inside, vec!["install-key".into(), mak.clone()]).await?;
    t.block(&v.1);
    let v = vamt(&inside, vec!["export".into(), carried.display().to_string(), "--no-pii".into()]).await?;
    t.block(&v.1);
    let text = std::fs::read_to_string(&carried)?;
    t.check(
        text.contains("NetworkType=\"None\"") && !text.contains("ISO-01") && !text.contains("127.0.0.1"),
        "the carried CIL has no machine names or addresses",
    );
    t.section("Outside: kmslab vamt acquire-cids on the host that reaches the service");
    let v = vamt(&carried, vec!["acquire-cids".into(), carried.display().to_string(), "--service".into(), svc.admin.to_string()]).await?;
    t.block(&v.1);
    t.block(&[svc.count_line(&mak).await]);
    let cids = Cil::parse(&std::fs::read_to_string(&carried)?)
        .map(|c| c.computers.list.iter().filter(|c| c.products.list.iter().any(|p| p.confirmation_id.is_some())).count())
        .unwrap_or(0);
    let left = svc.remaining(&mak).await;
    t.check(v.0 && cids == 2 && left == Some(1), "2 confirmation IDs acquired, 2 activations used");
    // The carried file alone cannot reach the machines: it has no addresses.
    let direct = vamt(&carried, vec!["apply-cids".into()]).await?;
    t.block(&direct.1);
    t.check(
        !direct.0 && direct.1.iter().any(|l| l.contains("no address (a secure export)")),
        "the secure export cannot be applied by itself: it must be imported into the inside CIL, which maps its CIDs to machines",
    );
    t.section("Inside again: kmslab vamt import, apply-cids");
    let v = vamt(&inside, vec!["import".into(), carried.display().to_string()]).await?;
    t.block(&v.1);
    let v = vamt(&inside, vec!["apply-cids".into()]).await?;
    t.block(&v.1);
    t.section("Outcome");
    t.say(format!("  slmgr /xpr on {}:", machines[1].name));
    t.block(&machines[1].xpr_lines().await);
    let mut all = v.0;
    for m in &machines {
        all &= m.status().await["permanently_activated"] == true;
    }
    t.check(all, "both isolated machines are permanently activated");
    t.check(svc.remaining(&mak).await == Some(1), "the MAK has 1 activation left");
    let refs: Vec<&LabMachine> = machines.iter().collect();
    summary(t, &refs, &[(HResult::HOST_UNREACHABLE, unreachable)]).await;
    for m in machines {
        m.stop().await;
    }
    svc.stop().await;
    Ok(())
}

/// Runs `kmslab vamt --cil CIL ARGS...` in this process (on the blocking pool: VAMT talks
/// blocking HTTP); whether it succeeded, and its output as lines.
async fn vamt(cil: &std::path::Path, args: Vec<String>) -> anyhow::Result<(bool, Vec<String>)> {
    use clap::Parser as _;
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        vamt: crate::vamt::VamtArgs,
    }
    let mut argv = vec!["vamt".to_owned(), "--cil".to_owned(), cil.display().to_string()];
    argv.extend(args);
    let shown = format!("kmslab {}", argv.join(" "));
    let cli = Cli::try_parse_from(&argv).map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
    let handle = tokio::runtime::Handle::current();
    let (code, lines) = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        let code = handle.block_on(crate::vamt::run_to(cli.vamt, &mut out));
        (code, out)
    })
    .await?;
    let code = code?;
    let mut shown_lines = vec![format!("$ {shown}")];
    shown_lines.extend(lines);
    Ok((code == std::process::ExitCode::SUCCESS, shown_lines))
}
