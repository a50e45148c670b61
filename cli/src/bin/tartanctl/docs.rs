//! Reading resource documents for `apply`, `create`, `replace` and `delete -f`: YAML documents
//! separated by `---`, or JSON (one or more objects, or an array), from a file or stdin. A
//! `List` document (what `get -o yaml` prints) stands for its items. Each document is kept as
//! it was written — the server judges its fields — with its kind and name picked out.

use std::io::Read;

use serde::Deserialize;
use serde_json::Value;
use tartan_ipam::resources::Kind;

use crate::context::{Error, Result};

/// One resource read from a file.
#[derive(Debug, Clone)]
pub struct Document {
    /// 1-based position among the file's resources.
    pub index: usize,
    pub kind: Kind,
    pub name: String,
    pub value: Value,
}

impl Document {
    /// `document 2 (IPPool "pool-v6")`.
    pub fn label(&self) -> String {
        format!("document {} ({} {:?})", self.index, self.kind, self.name)
    }

    /// `metadata.resourceVersion`, if the document carries one.
    pub fn resource_version(&self) -> Option<&str> {
        self.value.pointer("/metadata/resourceVersion").and_then(Value::as_str)
    }
}

/// Reads and identifies every document of `path` (`-` = stdin); nothing is sent if any is
/// malformed.
pub fn read(path: &str) -> Result<Vec<Document>> {
    let (text, source) = if path == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Error::new(format!("cannot read standard input: {e}")))?;
        (text, "standard input".to_string())
    } else {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::new(format!("cannot read {path}: {e}")))?;
        (text, path.to_string())
    };
    let values = parse(&text).map_err(|e| Error::new(format!("{source}: {e}")))?;
    let mut docs = Vec::new();
    for value in values {
        expand(value, &mut docs);
    }
    if docs.is_empty() {
        return Err(Error::new(format!("{source} holds no resource")));
    }
    docs.into_iter()
        .enumerate()
        .map(|(i, value)| identify(i + 1, value).map_err(|e| Error::new(format!("{source}: {e}"))))
        .collect()
}

/// The documents of a YAML or JSON text (empty YAML documents are skipped).
pub fn parse(text: &str) -> Result<Vec<Value>, String> {
    if text.trim_start().starts_with(['{', '[']) {
        let mut out = Vec::new();
        for (i, v) in serde_json::Deserializer::from_str(text).into_iter::<Value>().enumerate() {
            match v.map_err(|e| format!("JSON document {} is not valid: {e}", i + 1))? {
                Value::Array(items) => out.extend(items),
                v => out.push(v),
            }
        }
        return Ok(out);
    }
    let mut out = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(doc)
            .map_err(|e| format!("YAML document {} is not valid: {e}", i + 1))?;
        if !value.is_null() {
            out.push(value);
        }
    }
    Ok(out)
}

/// A `...List` document with `items` becomes its items, and so does a sequence of resources
/// (what `calicoctl get KIND A B -o yaml` prints).
fn expand(value: Value, out: &mut Vec<Value>) {
    let is_list = value.get("kind").and_then(Value::as_str).is_some_and(|k| k.ends_with("List"))
        && value.get("items").is_some_and(Value::is_array);
    match value {
        Value::Array(items) => items.into_iter().for_each(|v| expand(v, out)),
        v if is_list => {
            if let Some(Value::Array(items)) = v.get("items").cloned() {
                items.into_iter().for_each(|i| expand(i, out));
            }
        }
        v => out.push(v),
    }
}

fn identify(index: usize, value: Value) -> Result<Document, String> {
    if !value.is_object() {
        return Err(format!(
            "document {index} is not a resource (a mapping with kind, metadata, spec)"
        ));
    }
    let Some(kind_text) = value.get("kind").and_then(Value::as_str) else {
        return Err(format!("document {index} has no kind (e.g. `kind: IPPool`)"));
    };
    // A document names its kind exactly (any case), or by Calico's name (`IPAMConfiguration`),
    // as the API requires; aliases are for typing.
    let Some(kind) = Kind::from_document_kind(kind_text) else {
        let kinds: Vec<&str> = Kind::all().map(|k| k.info().kind).collect();
        return Err(format!(
            "document {index} has unknown kind {kind_text:?}; a document's kind is one of {}",
            kinds.join(", ")
        ));
    };
    let name = value.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    if name.is_empty() {
        return Err(format!("document {index} ({kind}) has no metadata.name"));
    }
    Ok(Document { index, kind, name: name.to_string(), value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_documents_lists_and_json() {
        let yaml = "---\nkind: IPPool\nmetadata: {name: a}\n---\n---\nkind: ippool\nmetadata:\n  name: b\n";
        let docs: Vec<Document> = parse(yaml)
            .expect("yaml")
            .into_iter()
            .enumerate()
            .map(|(i, v)| identify(i + 1, v).expect("doc"))
            .collect();
        assert_eq!(docs.len(), 2);
        assert_eq!((docs[1].index, docs[1].kind, docs[1].name.as_str()), (2, Kind::IpPool, "b"));

        let json = r#"{"kind":"Node","metadata":{"name":"n1"}} [{"kind":"Node","metadata":{"name":"n2"}}]"#;
        assert_eq!(parse(json).expect("json").len(), 2);

        let mut out = Vec::new();
        let list = serde_json::json!({"kind": "IPPoolList", "items": [{"kind": "IPPool"}, {}]});
        expand(list, &mut out);
        assert_eq!(out.len(), 2);

        let bad = identify(3, serde_json::json!({"kind": "pool", "metadata": {"name": "x"}}));
        assert!(bad.expect_err("alias").contains("document 3 has unknown kind \"pool\""));
    }
}
