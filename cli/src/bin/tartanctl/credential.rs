//! `node credential issue|revoke|list`: node agents' own credentials (see `api::auth` in the
//! ipam crate for what one may do). The token is shown or written once; the server keeps its
//! hash.

use tartan_ipam::resources::{Kind, List, RawResource};

use crate::cli::CredentialCommand;
use crate::context::{Error, Result, encode};
use crate::output::emit;

/// `node credential issue|revoke|list`.
pub async fn run(ctx: &crate::context::Ctx, cmd: CredentialCommand) -> Result<()> {
    use hyper::Method;
    let api = ctx.connect()?;
    let plural = Kind::NodeCredential.info().plural;
    match cmd {
        CredentialCommand::Issue(args) => {
            let path = format!("/v1/credentials/{}", encode(&args.node));
            let issued: serde_json::Value = api.call(Method::POST, &path, None::<&()>).await?;
            let token = issued["token"]
                .as_str()
                .ok_or_else(|| Error::new("the server's answer holds no token"))?;
            match &args.output {
                None => emit(&format!("{token}\n")),
                Some(file) => {
                    write_private(file, &format!("{token}\n"))?;
                    emit(&format!(
                        "Issued a credential for node {}; the token is in {} (mode 0600).\n",
                        args.node,
                        file.display()
                    ));
                }
            }
            Ok(())
        }
        CredentialCommand::Revoke(args) => {
            let path = format!("/v1/{plural}/{}", encode(&args.node));
            match api.call::<serde_json::Value>(Method::DELETE, &path, None::<&()>).await {
                Ok(_) => {
                    emit(&format!("Revoked the credential of node {}.\n", args.node));
                    Ok(())
                }
                Err(e) if e.is("not_found") => Err(Error::new(format!(
                    "node {} has no credential (`tartanctl node credential list`)",
                    args.node
                ))),
                Err(e) => Err(e),
            }
        }
        CredentialCommand::List => {
            let list: List<RawResource> = api.get(&format!("/v1/{plural}")).await?;
            let rows: Vec<Vec<String>> = list
                .items
                .iter()
                .map(|r| {
                    vec![
                        r.metadata.name.clone(),
                        r.metadata.creation_timestamp.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            emit(&crate::output::plain(&["NODE", "ISSUED"], &rows));
            Ok(())
        }
    }
}

/// Writes `text` to a new or truncated file readable by its owner only.
fn write_private(path: &std::path::Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let err = |e: std::io::Error| Error::new(format!("cannot write {}: {e}", path.display()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).map_err(err)
}
