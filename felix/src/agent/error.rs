//! The agent's one error type, and the helpers that give each failure its context.

use tartan_ipam::client::ClientError;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{0}")]
    Config(String),
    #[error("{what}: {source}")]
    Api {
        what: String,
        #[source]
        source: ClientError,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("BGP speaker: {0}")]
    Speaker(#[from] tartan_bgp::io::SpeakerError),
    #[error(transparent)]
    Kernel(#[from] crate::routes::KernelError),
}

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> AgentError {
    let what = what.into();
    move |source| AgentError::Io { what, source }
}

pub(crate) fn api(what: impl Into<String>) -> impl FnOnce(ClientError) -> AgentError {
    let what = what.into();
    move |source| AgentError::Api { what, source }
}
