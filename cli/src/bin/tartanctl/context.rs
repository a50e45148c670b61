//! Where the API is and how to reach it: the global options resolved against the environment
//! and the config file, the token file, the [`Api`] wrapper over the ipam crate's client that
//! turns every failure into an [`Error`] saying what to do, and URL encoding.

use std::fmt;
use std::path::{Path, PathBuf};

use hyper::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tartan_ipam::client::{Client, ClientError, DEFAULT_API};

use crate::cli::Global;

/// The config file read when neither -c nor TARTANCTL_CONFIG names one (if it exists).
pub const DEFAULT_CONFIG: &str = "/etc/tartan/tartanctl.yaml";
/// The token file tried when none is configured (the apiserver's default data directory).
pub const DEFAULT_TOKEN_FILE: &str = "/var/lib/tartan/token";

/// A failure of a command: the message for stderr and, when the server answered, its code.
#[derive(Debug)]
pub struct Error {
    pub message: String,
    pub code: Option<String>,
    /// The exit status (1 unless the command says otherwise).
    pub exit: u8,
}

/// The exit status of `ipam check` when it found problems (1 stays "could not check").
pub const EXIT_PROBLEMS: u8 = 2;

impl Error {
    pub fn new(message: impl Into<String>) -> Error {
        Error { message: message.into(), code: None, exit: 1 }
    }

    /// A failure with its own exit status.
    pub fn with_exit(message: impl Into<String>, exit: u8) -> Error {
        Error { exit, ..Error::new(message) }
    }

    /// The API answered with this error code (`not_found`, `already_exists`, ...).
    pub fn is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<String> for Error {
    fn from(message: String) -> Error {
        Error::new(message)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `tartanctl.yaml`.
#[derive(serde::Deserialize, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FileConfig {
    api: Option<String>,
    token_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
}

/// The resolved settings; the token file is read only by commands that need it.
#[derive(Debug)]
pub struct Ctx {
    pub api: String,
    /// The token file and where its name came from.
    token_file: Option<(PathBuf, String)>,
    /// The CA to trust for https:// servers.
    ca_file: Option<PathBuf>,
}

impl Ctx {
    /// Resolves flag > environment (both via clap) > config file > default.
    pub fn resolve(global: &Global) -> Result<Ctx> {
        let (file, from) = match &global.config {
            Some(path) => (Some(load_config(path)?), path.clone()),
            None if Path::new(DEFAULT_CONFIG).exists() => {
                (Some(load_config(Path::new(DEFAULT_CONFIG))?), PathBuf::from(DEFAULT_CONFIG))
            }
            None => (None, PathBuf::new()),
        };
        let file = file.unwrap_or_default();
        let api = global.api.clone().or(file.api).unwrap_or_else(|| DEFAULT_API.to_string());
        // Relative to the config file's directory, like most tools' config files.
        let beside_config = |path: PathBuf| match from.parent() {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path,
        };
        let ca_file = global.ca_file.clone().or_else(|| file.ca_file.map(beside_config));
        let token_file = match (&global.token_file, file.token_file) {
            (Some(path), _) => Some((path.clone(), "--token-file / TARTAN_TOKEN_FILE".to_string())),
            (None, Some(path)) => {
                Some((beside_config(path), format!("tokenFile in {}", from.display())))
            }
            (None, None) if std::fs::File::open(DEFAULT_TOKEN_FILE).is_ok() => {
                Some((PathBuf::from(DEFAULT_TOKEN_FILE), "the default location".to_string()))
            }
            (None, None) => None,
        };
        Ok(Ctx { api, token_file, ca_file })
    }

    /// A client with the token: what every command but `version` and `completion` uses.
    pub fn connect(&self) -> Result<Api> {
        let token = match &self.token_file {
            Some((path, from)) => Some(read_token(path, from)?),
            None => None,
        };
        self.client(token)
    }

    /// A client with the token if one can be read, else without (for `version`).
    pub fn connect_lenient(&self) -> Result<Api> {
        let token = self.token_file.as_ref().and_then(|(path, from)| read_token(path, from).ok());
        self.client(token)
    }

    fn client(&self, token: Option<String>) -> Result<Api> {
        let client = Client::with_ca(&self.api, token, self.ca_file.as_deref()).map_err(|e| {
            Error::new(format!("{e} (from --api, --ca-file, their variables or the config file)"))
        })?;
        Ok(Api { client, token_file: self.token_file.as_ref().map(|(p, _)| p.clone()) })
    }
}

fn load_config(path: &Path) -> Result<FileConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::new(format!(
            "cannot read the config file {}: {e}; fix -c / TARTANCTL_CONFIG or create the file \
             (YAML: `api: https://HOST:PORT`, `tokenFile: FILE`, `caFile: FILE`)",
            path.display()
        ))
    })?;
    if text.trim().is_empty() {
        return Ok(FileConfig::default());
    }
    serde_yaml::from_str(&text).map_err(|e| {
        Error::new(format!(
            "the config file {} is not valid: {e}; it takes `api: https://HOST:PORT`, `tokenFile: FILE` and `caFile: FILE`",
            path.display()
        ))
    })
}

fn read_token(path: &Path, from: &str) -> Result<String> {
    const FIX: &str = "give the token file of the API server with --token-file FILE or \
                       TARTAN_TOKEN_FILE (`tartan apiserver` writes it to <data-dir>/token on first start)";
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => Ok(text.trim().to_string()),
        Ok(_) => Err(Error::new(format!(
            "the token file {} (from {from}) is empty; {FIX}",
            path.display()
        ))),
        Err(e) => Err(Error::new(format!(
            "cannot read the token file {} (from {from}): {e}; {FIX}",
            path.display()
        ))),
    }
}

/// The API client, with errors that say what to do.
#[derive(Debug)]
pub struct Api {
    client: Client,
    token_file: Option<PathBuf>,
}

impl Api {
    pub fn url(&self) -> &str {
        self.client.url()
    }

    /// GET returning JSON.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.client.get_json(path).await.map_err(|e| self.error(e))
    }

    /// A JSON request with a JSON answer.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<T> {
        self.call_with(method, path, body, &[]).await
    }

    /// [`Api::call`] with extra headers.
    pub async fn call_with<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
        headers: &[(&str, &str)],
    ) -> Result<T> {
        self.client.call_with(method, path, body, headers).await.map_err(|e| self.error(e))
    }

    /// Every resource of a kind, typed.
    pub async fn list<S: tartan_ipam::resources::Spec>(
        &self,
    ) -> Result<Vec<tartan_ipam::resources::Resource<S>>> {
        self.client.list::<S>(None).await.map(|l| l.items).map_err(|e| self.error(e))
    }

    /// A GET whose 404 is an answer, not an error.
    pub async fn get_optional<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>> {
        match self.get(path).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is("not_found") => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn error(&self, e: ClientError) -> Error {
        if e.status().is_some_and(|s| s.as_u16() == 401) {
            let message = match &self.token_file {
                Some(path) => format!(
                    "the API server at {} refused the token in {}: is it the token of this server \
                     (<data-dir>/token of its `tartan apiserver`)? Give the right file with \
                     --token-file or TARTAN_TOKEN_FILE",
                    self.url(),
                    path.display()
                ),
                None => format!(
                    "the API server at {} needs a token: give its token file with --token-file FILE \
                     or TARTAN_TOKEN_FILE (`tartan apiserver` writes it to <data-dir>/token; the \
                     default {DEFAULT_TOKEN_FILE} is not readable)",
                    self.url()
                ),
            };
            return Error { code: Some("unauthorized".into()), ..Error::new(message) };
        }
        let code = e.code().map(str::to_string);
        Error { code, ..Error::new(e.to_string()) }
    }
}

pub use tartan_ipam::client::encode;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_keeps_unreserved_and_escapes_the_rest() {
        assert_eq!(encode("pool-v4.a_b~"), "pool-v4.a_b~");
        assert_eq!(encode("rack == 'a'"), "rack%20%3D%3D%20%27a%27");
        assert_eq!(encode("10.65.0.0/26"), "10.65.0.0%2F26");
    }
}
