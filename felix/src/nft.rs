//! Running `nft -f -`: one script, one kernel transaction, off the async runtime's threads
//! (a child process awaited by tokio) and within a time limit, with nft's own error text.

use std::io;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// How long one `nft -f` may take: a script of ours commits in milliseconds; longer means a
/// kernel or nft that hangs, and the caller retries on its next pass.
const NFT_TIMEOUT: Duration = Duration::from_secs(20);

/// Why a script was not applied.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error("nft is not installed (install the nftables package)")]
    NotInstalled,
    #[error("running nft: {0}")]
    Io(#[from] io::Error),
    #[error("nft did not finish within {} s", NFT_TIMEOUT.as_secs())]
    Timeout,
    #[error("nft: {0}")]
    Refused(String),
}

/// Applies `script` in one transaction: all of it, or nothing and nft's complaint.
pub async fn apply(script: &str) -> Result<(), NftError> {
    let spawned = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(NftError::NotInstalled),
        Err(e) => return Err(NftError::Io(e)),
    };
    let run = async {
        // nft may stop reading early (a syntax error on the first line): its exit status and
        // stderr say why, so a failed write is not the error to report.
        let wrote = match child.stdin.take() {
            Some(mut stdin) => stdin.write_all(script.as_bytes()).await,
            None => Ok(()),
        };
        let out = child.wait_with_output().await?;
        if out.status.success() {
            wrote.map_err(NftError::Io)
        } else {
            Err(NftError::Refused(String::from_utf8_lossy(&out.stderr).trim().to_string()))
        }
    };
    tokio::time::timeout(NFT_TIMEOUT, run).await.map_err(|_| NftError::Timeout)?
}
