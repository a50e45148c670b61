//! Resources by type: the kind comes from the spec type ([`Spec`]), names and selectors are
//! percent-encoded here and nowhere else, and an answer that does not fit the type is an
//! error, never an empty value.

use serde_json::Value;

use super::{Client, ClientError, Method, encode};
use crate::resources::{Kind, List, RawResource, Resource, Spec};

/// `/v1/<plural>/<name>`, the name encoded.
pub fn item_path(kind: Kind, name: &str) -> String {
    format!("/v1/{}/{}", kind.info().plural, encode(name))
}

/// `/v1/<plural>`, with `?labelSelector=` when a selector is given.
pub fn list_path(kind: Kind, selector: Option<&str>) -> String {
    match selector {
        Some(s) => format!("/v1/{}?labelSelector={}", kind.info().plural, encode(s)),
        None => format!("/v1/{}", kind.info().plural),
    }
}

impl Client {
    /// The resource of kind `S::KIND` named `name`.
    pub async fn get<S: Spec>(&self, name: &str) -> Result<Resource<S>, ClientError> {
        let raw: RawResource = self.get_json(&item_path(S::KIND, name)).await?;
        self.typed(&raw)
    }

    /// [`Client::get`], with a resource that does not exist as `None`.
    pub async fn get_optional<S: Spec>(
        &self,
        name: &str,
    ) -> Result<Option<Resource<S>>, ClientError> {
        match self.get(name).await {
            Ok(r) => Ok(Some(r)),
            Err(e) if e.code() == Some("not_found") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every resource of kind `S::KIND` that `selector` (Calico's syntax) matches, with the
    /// revision the list was read at. All or nothing: one item that does not fit `S` fails
    /// the list, so that nobody mistakes a partial list for the whole.
    pub async fn list<S: Spec>(
        &self,
        selector: Option<&str>,
    ) -> Result<List<Resource<S>>, ClientError> {
        let raw: List<RawResource> = self.get_json(&list_path(S::KIND, selector)).await?;
        let items = raw.items.iter().map(|r| self.typed(r)).collect::<Result<Vec<_>, _>>()?;
        Ok(List { api_version: raw.api_version, kind: raw.kind, revision: raw.revision, items })
    }

    /// Creates or replaces `resource` (conditionally, when it carries a `resourceVersion`) and
    /// returns it as stored.
    pub async fn put<S: Spec>(&self, resource: &Resource<S>) -> Result<Resource<S>, ClientError> {
        let path = item_path(S::KIND, &resource.metadata.name);
        let raw: RawResource = self.call(Method::PUT, &path, Some(resource)).await?;
        self.typed(&raw)
    }

    /// Deletes the resource of kind `S::KIND` named `name`.
    pub async fn delete<S: Spec>(&self, name: &str) -> Result<(), ClientError> {
        let _: Value = self.call(Method::DELETE, &item_path(S::KIND, name), None::<&()>).await?;
        Ok(())
    }

    /// A resource as `S`: a spec this build cannot read is an error naming the resource and
    /// the field, never a default.
    fn typed<S: Spec>(&self, raw: &RawResource) -> Result<Resource<S>, ClientError> {
        raw.typed::<S>().map_err(|e| ClientError::Protocol {
            url: self.url().to_string(),
            reason: format!(
                "{} {} is not understood ({e}): is this program older than the API server?",
                S::KIND.info().kind,
                raw.metadata.name
            ),
        })
    }
}
