//! TLS for the API and for etcd (rustls, ring): PEM files read with a size limit into rustls
//! configurations; a server certificate that is replaced without a restart
//! ([`ReloadingCert`]); the client side that trusts a CA and checks the server's name.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The largest PEM file read (a certificate chain or a key is a few KiB).
const PEM_LIMIT: u64 = 1 << 20;
/// Where Debian (and most distributions) keep the system's trusted CAs: used for `https://`
/// when no CA file is given.
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// What can go wrong setting TLS up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")]
    NoCertificate { path: PathBuf },
    #[error("{path} holds no PEM private key (PKCS#8, PKCS#1 or SEC1): {reason}")]
    NoKey { path: PathBuf, reason: String },
    #[error("the key in {key} does not fit the certificate in {cert}: {reason}")]
    Mismatch { cert: PathBuf, key: PathBuf, reason: String },
    #[error(
        "https:// needs a CA to trust: give --ca-file FILE (or TARTAN_CA_FILE); {SYSTEM_ROOTS} is not there either"
    )]
    NoRoots,
    #[error("TLS setup: {0}")]
    Config(String),
}

/// The one crypto provider (ring) for every TLS configuration. rustls deprecates ring's
/// provider for lacking post-quantum key exchange; its replacement (aws-lc-rs) needs cmake and
/// a C toolchain build several times longer, so ring stays until that is worth it.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a regular file of at most [`PEM_LIMIT`] bytes.
fn read_pem(path: &Path) -> Result<Vec<u8>, TlsError> {
    let err = |reason: String| TlsError::Read { path: path.to_path_buf(), reason };
    let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let meta = file.metadata().map_err(|e| err(e.to_string()))?;
    if !meta.is_file() {
        return Err(err("not a regular file".into()));
    }
    let mut bytes = Vec::new();
    file.take(PEM_LIMIT + 1).read_to_end(&mut bytes).map_err(|e| err(e.to_string()))?;
    if bytes.len() as u64 > PEM_LIMIT {
        return Err(err(format!("larger than {PEM_LIMIT} bytes: not a PEM file")));
    }
    Ok(bytes)
}

/// Every certificate in a PEM file (a chain: the end entity first).
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_pem(path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem).filter_map(Result::ok).collect();
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: path.to_path_buf() });
    }
    Ok(certs)
}

/// The private key in a PEM file.
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read_pem(path)?;
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| TlsError::NoKey { path: path.to_path_buf(), reason: e.to_string() })
}

fn certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let chain = read_certs(cert)?;
    let private = read_key(key)?;
    CertifiedKey::from_der(chain, private, &provider()).map_err(|e| TlsError::Mismatch {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        reason: e.to_string(),
    })
}

/// The trust roots: the certificates in `ca`, or the system's when none is given.
fn roots(ca: Option<&Path>) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    let certs = match ca {
        Some(ca) => read_certs(ca)?,
        None if Path::new(SYSTEM_ROOTS).exists() => read_certs(Path::new(SYSTEM_ROOTS))?,
        None => return Err(TlsError::NoRoots),
    };
    let (_, ignored) = roots.add_parsable_certificates(certs);
    if roots.is_empty() {
        return Err(TlsError::Config(format!(
            "none of the {ignored} certificate(s) in {} can be a trust root",
            ca.unwrap_or(Path::new(SYSTEM_ROOTS)).display()
        )));
    }
    Ok(roots)
}

/// A client configuration that trusts `ca` (or the system's CAs) and checks the server's
/// name; with `identity` (certificate, key) it also proves its own (etcd's client-cert-auth).
pub fn client_config(
    ca: Option<&Path>,
    identity: Option<(&Path, &Path)>,
) -> Result<ClientConfig, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots(ca)?);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = read_certs(cert)?;
            builder.with_client_auth_cert(chain, read_key(key)?).map_err(|e| {
                TlsError::Mismatch {
                    cert: cert.to_path_buf(),
                    key: key.to_path_buf(),
                    reason: e.to_string(),
                }
            })?
        }
    };
    Ok(config)
}

/// [`client_config`] from optional flags (`--etcd-ca-file`, `--etcd-cert-file`,
/// `--etcd-key-file`): `None` when none is given; a certificate needs its key.
pub fn client_config_from(
    ca: Option<&Path>,
    cert: Option<&Path>,
    key: Option<&Path>,
) -> Result<Option<Box<ClientConfig>>, TlsError> {
    let identity = match (cert, key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => {
            return Err(TlsError::Config(
                "a client certificate needs its key, and a key its certificate: give both".into(),
            ));
        }
    };
    if ca.is_none() && identity.is_none() {
        return Ok(None);
    }
    client_config(ca, identity).map(|c| Some(Box::new(c)))
}

/// The connector of every HTTP client here: `http://` as is, `https://` with `tls` (a URL
/// of that scheme without a configuration fails to connect, trusting nothing).
pub fn connector(
    tls: Option<ClientConfig>,
    connect_timeout: std::time::Duration,
) -> Result<HttpsConnector<HttpConnector>, TlsError> {
    let tls = match tls {
        Some(c) => c,
        None => ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(RootCertStore::empty())
            .with_no_client_auth(),
    };
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    // The TLS layer decides the scheme; the TCP layer must let https:// through.
    http.enforce_http(false);
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http))
}

/// When a file was last changed, and its size: what a reload compares.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// The server's certificate and key, replaced in place by [`ReloadingCert::reload`]: new
/// handshakes get the new pair, established connections keep theirs.
#[derive(Debug)]
pub struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    stamps: Mutex<(Stamp, Stamp)>,
}

impl ReloadingCert {
    /// Reads the pair; fails when either file is missing or they do not belong together.
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<ReloadingCert>, TlsError> {
        let stamps = (stamp(cert), stamp(key));
        let pair = certified_key(cert, key)?;
        Ok(Arc::new(ReloadingCert {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: RwLock::new(Arc::new(pair)),
            stamps: Mutex::new(stamps),
        }))
    }

    /// Whether either file changed since the pair in use was read.
    pub fn changed(&self) -> bool {
        let now = (stamp(&self.cert), stamp(&self.key));
        self.stamps.lock().map(|s| *s != now).unwrap_or(true)
    }

    /// Reads the pair again and puts it in use. A pair that cannot be read, or does not fit
    /// together (a key written before its certificate), leaves the old one serving until the
    /// files change again.
    pub fn reload(&self) -> Result<(), TlsError> {
        if let Ok(mut s) = self.stamps.lock() {
            *s = (stamp(&self.cert), stamp(&self.key));
        }
        let pair = certified_key(&self.cert, &self.key)?;
        if let Ok(mut current) = self.current.write() {
            *current = Arc::new(pair);
        }
        Ok(())
    }

    /// The certificate file, for messages.
    pub fn cert_path(&self) -> &Path {
        &self.cert
    }

    /// The server configuration that serves this pair (HTTP/1.1 only).
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, TlsError> {
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| c.clone())
    }
}
