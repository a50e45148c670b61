//! The resource commands: `get`, `apply` / `create` / `replace`, `delete`, `patch`, `label`.
//! Each maps onto `/v1/<plural>[/<name>]`; the server validates, these report per resource and
//! stop at the first failure.

use hyper::Method;
use serde_json::{Value, json};
use tartan_ipam::resources::{API_VERSION, Kind, List, RawResource};

use crate::cli::{DeleteArgs, FileArgs, GetArgs, LabelArgs, Output, PatchArgs};
use crate::context::{Api, Ctx, Error, Result, encode};
use crate::docs::{self, Document};
use crate::kinds::{self, Extra};
use crate::output::{self, emit};

fn item_path(kind: Kind, name: &str) -> String {
    // Blocks are named after their CIDR with dashes; accept the CIDR itself too.
    let name = if kind == Kind::IpamBlock && name.contains('/') {
        name.replace(['.', ':', '/'], "-")
    } else {
        name.to_string()
    };
    format!("/v1/{}/{}", kind.info().plural, encode(&name))
}

fn not_found(kind: Kind, name: &str) -> String {
    format!("{kind} {name:?} not found (`tartanctl get {}` lists them)", kind.info().plural)
}

/// `get KIND [NAME...]`.
pub async fn get(ctx: &Ctx, args: GetArgs) -> Result<()> {
    let kind = kinds::resolve(&args.kind)?;
    let api = ctx.connect()?;
    let plural = kind.info().plural;
    let mut missing = Vec::new();
    let (items, revision) = if args.names.is_empty() {
        let path = match &args.selector {
            Some(s) => format!("/v1/{plural}?labelSelector={}", encode(s)),
            None => format!("/v1/{plural}"),
        };
        let list: List<RawResource> = api.get(&path).await?;
        (list.items, Some(list.revision))
    } else {
        let mut items = Vec::new();
        for name in &args.names {
            match api.get_optional::<RawResource>(&item_path(kind, name)).await? {
                Some(r) => items.push(r),
                None => missing.push(not_found(kind, name)),
            }
        }
        (items, None)
    };
    let single = args.names.len() == 1;
    let calico = args.api_version == tartan_ipam::resources::calico::CALICO_API_VERSION;
    let shaped =
        |doc: Value| if calico { tartan_ipam::resources::calico::to_calico(doc) } else { doc };
    let text = match &args.output {
        Output::Table | Output::Wide => {
            let mut extra = Extra::default();
            if kinds::view(kind)?.needs_default_as {
                extra.default_as = default_as(&api).await?;
            }
            kinds::table(kind, &items, args.output == Output::Wide, &extra)?
        }
        Output::Name => items
            .iter()
            .map(|r| format!("{}/{}\n", kind.info().kind.to_ascii_lowercase(), r.metadata.name))
            .collect(),
        Output::CustomColumns(columns) => custom_columns(columns, &items)?,
        Output::Yaml | Output::Json if single && items.len() == 1 => {
            let doc =
                shaped(serde_json::to_value(&items[0]).map_err(|e| Error::new(e.to_string()))?);
            if args.output == Output::Yaml { output::yaml(&doc)? } else { output::json(&doc)? }
        }
        Output::Yaml | Output::Json if single => String::new(),
        Output::Yaml | Output::Json => {
            let list = ListOut {
                api_version: API_VERSION,
                kind: format!("{}List", kind.info().kind),
                revision,
                items: &items,
            };
            let doc = shaped(serde_json::to_value(&list).map_err(|e| Error::new(e.to_string()))?);
            if args.output == Output::Yaml { output::yaml(&doc)? } else { output::json(&doc)? }
        }
    };
    emit(&text);
    if missing.is_empty() { Ok(()) } else { Err(Error::new(missing.join("\n"))) }
}

/// `-o custom-columns=`: each column's path (`.spec.cidr`, `.items[0]`) read from every
/// resource; a path that leads nowhere prints `<none>`, as kubectl does.
fn custom_columns(columns: &[(String, String)], items: &[RawResource]) -> Result<String> {
    let headers: Vec<&str> = columns.iter().map(|(h, _)| h.as_str()).collect();
    let mut rows = Vec::new();
    for item in items {
        let doc = serde_json::to_value(item).map_err(|e| Error::new(e.to_string()))?;
        let mut row = Vec::new();
        for (_, path) in columns {
            let cell = match lookup(&doc, path) {
                None | Some(Value::Null) => "<none>".to_string(),
                Some(Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
            };
            row.push(cell);
        }
        rows.push(row);
    }
    Ok(output::plain(&headers, &rows))
}

/// A kubectl-style path: `.a.b`, `.a[2].b`.
fn lookup<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    let mut at = doc;
    for part in path.trim_start_matches('.').split('.').filter(|p| !p.is_empty()) {
        let (name, index) = match part.split_once('[') {
            Some((n, rest)) => (n, Some(rest.trim_end_matches(']').parse::<usize>().ok()?)),
            None => (part, None),
        };
        if !name.is_empty() {
            at = at.get(name)?;
        }
        if let Some(i) = index {
            at = at.get(i)?;
        }
    }
    Some(at)
}

/// A list as `get -o yaml|json` prints it: the API's list shape, fields in the usual order.
#[derive(serde::Serialize, Debug)]
#[serde(rename_all = "camelCase")]
struct ListOut<'a> {
    api_version: &'static str,
    kind: String,
    /// The store revision of a whole-kind list (absent for a list of named resources).
    #[serde(skip_serializing_if = "Option::is_none")]
    revision: Option<u64>,
    items: &'a [RawResource],
}

/// The fabric's AS number: BGPConfiguration `default`'s, else the built-in default.
pub async fn default_as(api: &Api) -> Result<u32> {
    let config: Option<RawResource> =
        api.get_optional(&item_path(Kind::BgpConfiguration, "default")).await?;
    Ok(config
        .and_then(|c| c.spec.get("asNumber").and_then(Value::as_u64))
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(tartan_ipam::resources::DEFAULT_AS))
}

/// How `apply`, `create` and `replace` write a document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    Apply,
    Create,
    Replace,
}

impl Write {
    fn verb(self) -> (&'static str, &'static str) {
        match self {
            Write::Apply => ("apply", "applied"),
            Write::Create => ("create", "created"),
            Write::Replace => ("replace", "replaced"),
        }
    }

    /// A hint after the server's message, for the usual mistakes.
    fn hint(self, e: &Error) -> &'static str {
        match self {
            Write::Create if e.is("already_exists") => {
                "; use `tartanctl apply` or `tartanctl replace` to change it"
            }
            Write::Replace if e.is("not_found") => {
                "; use `tartanctl create` or `tartanctl apply` to create it"
            }
            _ => "",
        }
    }
}

/// `apply|create|replace -f FILE`.
pub async fn write(ctx: &Ctx, args: FileArgs, how: Write) -> Result<()> {
    let docs = docs::read(&args.file)?;
    let api = ctx.connect()?;
    let (verb, done) = how.verb();
    for (i, doc) in docs.iter().enumerate() {
        let plural = doc.kind.info().plural;
        let result: Result<Value> = match how {
            Write::Apply => {
                api.call(Method::PUT, &item_path(doc.kind, &doc.name), Some(&doc.value)).await
            }
            Write::Create => {
                api.call(Method::POST, &format!("/v1/{plural}"), Some(&doc.value)).await
            }
            Write::Replace => {
                let path = item_path(doc.kind, &doc.name);
                api.call_with(Method::PUT, &path, Some(&doc.value), &[("If-Match", "*")]).await
            }
        };
        if let Err(e) = result {
            if i > 0 {
                emit(&format!(
                    "Partial success: {done} the first {i} of {} resource(s).\n",
                    docs.len()
                ));
            }
            let rest = docs.len() - i - 1;
            let skipped = if rest > 0 {
                format!(" ({rest} resource(s) after it were not processed)")
            } else {
                String::new()
            };
            return Err(Error::new(format!(
                "failed to {verb} {}: {}{}{skipped}",
                doc.label(),
                e.message,
                how.hint(&e)
            )));
        }
    }
    emit(&format!("Successfully {done} {}\n", count_by_kind(&docs)));
    if docs.iter().any(|d| {
        matches!(d.kind, Kind::GlobalNetworkPolicy | Kind::Profile | Kind::GlobalNetworkSet)
    }) {
        eprintln!(
            "note: this build stores and explains policy (`tartanctl policy explain`), but the \
             node agents do not enforce it yet: traffic is not filtered"
        );
    }
    Ok(())
}

/// `3 resource(s)` or `2 'IPPool' resource(s)` when all are of one kind (calicoctl's words).
fn count_by_kind(docs: &[Document]) -> String {
    match docs.first() {
        Some(first) if docs.iter().all(|d| d.kind == first.kind) => {
            format!("{} '{}' resource(s)", docs.len(), first.kind)
        }
        _ => format!("{} resource(s)", docs.len()),
    }
}

/// `delete KIND NAME... | -f FILE`.
pub async fn delete(ctx: &Ctx, args: DeleteArgs) -> Result<()> {
    let targets: Vec<(Kind, String, Option<String>)> = match (&args.file, &args.kind) {
        (Some(file), _) => docs::read(file)?
            .into_iter()
            .map(|d| {
                let version = d.resource_version().map(str::to_string);
                (d.kind, d.name, version)
            })
            .collect(),
        (None, Some(kind)) => {
            let kind = kinds::resolve(kind)?;
            if args.names.is_empty() {
                return Err(Error::new(format!(
                    "name the {kind} resource(s) to delete: `tartanctl delete {} NAME...`",
                    kind.info().aliases.first().copied().unwrap_or(kind.info().plural)
                )));
            }
            args.names.iter().map(|n| (kind, n.clone(), None)).collect()
        }
        (None, None) => {
            return Err(Error::new("give KIND NAME... or -f FILE (see `tartanctl delete --help`)"));
        }
    };
    let api = ctx.connect()?;
    let (mut deleted, mut skipped) = (0, Vec::new());
    for (i, (kind, name, version)) in targets.iter().enumerate() {
        let mut path = item_path(*kind, name);
        if let Some(v) = version {
            path.push_str(&format!("?resourceVersion={}", encode(v)));
        }
        match api.call::<Value>(Method::DELETE, &path, None::<&()>).await {
            Ok(_) => deleted += 1,
            Err(e) if e.is("not_found") && args.skip_not_found => {
                skipped.push(format!("{kind} {name:?}"));
            }
            Err(e) => {
                if deleted > 0 {
                    emit(&format!(
                        "Partial success: deleted {deleted} of {} resource(s).\n",
                        targets.len()
                    ));
                }
                let message = if e.is("not_found") {
                    format!(
                        "{}; pass --skip-not-found to ignore missing ones",
                        not_found(*kind, name)
                    )
                } else {
                    e.message
                };
                return Err(Error::new(format!(
                    "failed to delete {kind} {name:?} (resource {} of {}): {message}",
                    i + 1,
                    targets.len()
                )));
            }
        }
    }
    let mut text = format!("Successfully deleted {deleted} resource(s)");
    if !skipped.is_empty() {
        text.push_str(&format!("; not found, skipped: {}", skipped.join(", ")));
    }
    emit(&(text + "\n"));
    Ok(())
}

/// `patch KIND NAME -p PATCH`.
pub async fn patch(ctx: &Ctx, args: PatchArgs) -> Result<()> {
    let kind = kinds::resolve(&args.kind)?;
    let patch = match docs::parse(&args.patch) {
        Ok(mut values) if values.len() == 1 && values[0].is_object() => values.remove(0),
        Ok(_) => {
            return Err(Error::new(
                "the patch must be one JSON or YAML object, e.g. -p '{\"spec\": {\"natOutgoing\": true}}'",
            ));
        }
        Err(e) => return Err(Error::new(format!("the patch is not JSON or YAML: {e}"))),
    };
    let api = ctx.connect()?;
    let _: Value = api
        .call(Method::PATCH, &item_path(kind, &args.name), Some(&patch))
        .await
        .map_err(|e| if e.is("not_found") { Error::new(not_found(kind, &args.name)) } else { e })?;
    emit(&format!("Successfully patched 1 '{kind}' resource\n"));
    Ok(())
}

/// `label KIND NAME key=value... [--overwrite] [--remove key]`.
pub async fn label(ctx: &Ctx, args: LabelArgs) -> Result<()> {
    let kind = kinds::resolve(&args.kind)?;
    if args.labels.is_empty() && args.remove.is_empty() {
        return Err(Error::new("give labels to set (key=value) or --remove KEY"));
    }
    let mut set = Vec::new();
    for text in &args.labels {
        match text.split_once('=') {
            Some((k, v)) if !k.is_empty() => set.push((k.to_string(), v.to_string())),
            _ => {
                return Err(Error::new(format!(
                    "{text:?} is not a label: write key=value (remove one with --remove key)"
                )));
            }
        }
    }
    let api = ctx.connect()?;
    let path = item_path(kind, &args.name);
    let Some(current) = api.get_optional::<RawResource>(&path).await? else {
        return Err(Error::new(not_found(kind, &args.name)));
    };
    let labels = &current.metadata.labels;
    let mut changes = serde_json::Map::new();
    for (k, v) in &set {
        match labels.get(k) {
            Some(old) if old != v && !args.overwrite => {
                return Err(Error::new(format!(
                    "{kind} {:?} already has label {k}={old}; pass --overwrite to change it",
                    args.name
                )));
            }
            _ => {
                changes.insert(k.clone(), json!(v));
            }
        }
    }
    for k in &args.remove {
        if !labels.contains_key(k) {
            return Err(Error::new(format!("{kind} {:?} has no label {k:?} to remove", args.name)));
        }
        changes.insert(k.clone(), Value::Null);
    }
    // Guarded by the version the checks above were made against.
    let body = json!({"metadata": {
        "labels": changes,
        "resourceVersion": current.metadata.resource_version,
    }});
    let _: Value = api.call(Method::PATCH, &path, Some(&body)).await?;
    let mut done = Vec::new();
    if !set.is_empty() {
        let keys: Vec<&str> = set.iter().map(|(k, _)| k.as_str()).collect();
        done.push(format!("set label(s) {}", keys.join(", ")));
    }
    if !args.remove.is_empty() {
        done.push(format!("removed label(s) {}", args.remove.join(", ")));
    }
    emit(&format!("Successfully {} on {kind} {}\n", done.join(" and "), args.name));
    Ok(())
}
