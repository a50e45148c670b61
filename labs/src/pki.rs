//! The lab's certificate authority, as containerlab keeps it: at deploy time, for each node with
//! `certificate: {issue: true}`, a certificate signed by the lab's CA in
//! `<lab-dir>/.tls/<node>/<node>.pem` and `.key`, naming the node (`<node>`,
//! `clab-<lab>-<node>`, `<node>.<lab>.io`), its management addresses and its `sans`. The CA is
//! `<lab-dir>/.tls/ca/ca.pem` and `ca.key`, made once and kept across redeploys (clients that
//! trust it keep working). Keys are ECDSA P-256; files are mode 0600 except the certificates.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

use crate::error::LabError;
use crate::topology::Topology;

const CA_NAME: &str = "tartanlab lab CA";

fn pki_error(what: impl Into<String>) -> impl FnOnce(rcgen::Error) -> LabError {
    let what = what.into();
    move |e| LabError::Usage { message: format!("{what}: {e}") }
}

fn write(path: &Path, text: &str, mode: u32) -> Result<(), LabError> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(LabError::io(format!("writing {}", path.display())))?;
    file.write_all(text.as_bytes()).map_err(LabError::io(format!("writing {}", path.display())))
}

fn ca_params(lab: &str) -> Result<CertificateParams, LabError> {
    let mut params =
        CertificateParams::new(Vec::<String>::new()).map_err(pki_error("the lab CA"))?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, format!("{CA_NAME} {lab}"));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(params)
}

/// The lab's CA: read from `<lab-dir>/.tls/ca`, or made there.
fn lab_ca(lab: &str, lab_dir: &Path) -> Result<Issuer<'static, KeyPair>, LabError> {
    let dir = lab_dir.join(".tls/ca");
    let (cert, key) = (dir.join("ca.pem"), dir.join("ca.key"));
    let params = ca_params(lab)?;
    if cert.exists() && key.exists() {
        let pem = std::fs::read_to_string(&key)
            .map_err(LabError::io(format!("reading {}", key.display())))?;
        let key = KeyPair::from_pem(&pem).map_err(pki_error(format!("{}", key.display())))?;
        return Ok(Issuer::new(params, key));
    }
    std::fs::create_dir_all(&dir).map_err(LabError::io(format!("creating {}", dir.display())))?;
    let pair = KeyPair::generate().map_err(pki_error("the lab CA's key"))?;
    let signed = params.self_signed(&pair).map_err(pki_error("the lab CA"))?;
    write(&key, &pair.serialize_pem(), 0o600)?;
    write(&cert, &signed.pem(), 0o644)?;
    tracing::info!("made the lab's CA in {}", cert.display());
    Ok(Issuer::new(params, pair))
}

/// Issues the certificates the topology asks for; the paths of the files written.
pub fn issue_certificates(topo: &Topology, lab_dir: &Path) -> Result<Vec<PathBuf>, LabError> {
    let wanted: Vec<_> = topo.nodes.iter().filter(|n| n.certificate.is_some()).collect();
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let ca = lab_ca(&topo.name, lab_dir)?;
    let mut written = Vec::new();
    for node in wanted {
        let mut names = vec![
            node.name.clone(),
            node.long_name.clone(),
            format!("{}.{}.io", node.name, topo.name),
        ];
        if let Some(m) = &node.mgmt {
            names.push(m.ipv4.addr().to_string());
            if let Some(v6) = m.ipv6 {
                names.push(v6.addr().to_string());
            }
        }
        names.extend(node.certificate.iter().flatten().cloned());
        names.dedup();
        let what = format!("the certificate of node {}", node.name);
        let mut params = CertificateParams::new(names).map_err(pki_error(what.clone()))?;
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{}.{}.io", node.name, topo.name));
        let key = KeyPair::generate().map_err(pki_error(what.clone()))?;
        let cert = params.signed_by(&key, &ca).map_err(pki_error(what))?;
        let dir = lab_dir.join(".tls").join(&node.name);
        std::fs::create_dir_all(&dir)
            .map_err(LabError::io(format!("creating {}", dir.display())))?;
        let (c, k) =
            (dir.join(format!("{}.pem", node.name)), dir.join(format!("{}.key", node.name)));
        write(&k, &key.serialize_pem(), 0o600)?;
        write(&c, &cert.pem(), 0o644)?;
        written.push(c);
    }
    Ok(written)
}
